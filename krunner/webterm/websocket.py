"""A small RFC 6455 WebSocket implementation on asyncio streams (no extensions).

Only what the web terminal needs: the opening handshake (server side, and a
client side used by the tests and the Chrome DevTools driver), framing with
fragmentation, ping/pong, and the closing handshake.  ``permessage-deflate``
offers are ignored (never negotiated), so every frame must have RSV bits 0.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import os
import struct
from collections.abc import Mapping, Sequence

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA_OPCODES = frozenset({OP_CONT, OP_TEXT, OP_BINARY})
CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_NO_STATUS = 1005

DEFAULT_MAX_MESSAGE = 1 << 20
HANDSHAKE_LIMIT = 16 * 1024


class WebSocketError(Exception):
    """A protocol violation by the peer (carries the close code to answer with)."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class ConnectionClosed(Exception):
    """The closing handshake happened (or the stream ended)."""

    def __init__(self, code: int = CLOSE_NO_STATUS, reason: str = "") -> None:
        super().__init__(f"websocket closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A complete data message; ``text`` tells whether it was sent as a text frame."""

    data: bytes
    text: bool


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()


def _apply_mask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = False) -> bytes:
    """One frame; clients must set *mask* (a random key is drawn), servers must not."""
    first = (0x80 if fin else 0) | (opcode & 0x0F)
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, mask_bit | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + _apply_mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    if code == CLOSE_NO_STATUS:
        return b""
    return struct.pack("!H", code) + reason.encode()[:120]


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return CLOSE_NO_STATUS, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode(errors="replace")


async def read_frame(reader: asyncio.StreamReader, *, masked: bool, max_size: int) -> Frame:
    """Read one frame.  *masked* is whether the peer must mask (true for clients' frames)."""
    try:
        b0, b1 = await reader.readexactly(2)
        if b0 & 0x70:
            raise WebSocketError("reserved bits set (no extension was negotiated)")
        opcode = b0 & 0x0F
        if opcode not in DATA_OPCODES and opcode not in CONTROL_OPCODES:
            raise WebSocketError(f"unknown opcode {opcode:#x}")
        is_masked, length = bool(b1 & 0x80), b1 & 0x7F
        if is_masked != masked:
            raise WebSocketError("client frames must be masked" if masked else "server frames must not be masked")
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        fin = bool(b0 & 0x80)
        if opcode in CONTROL_OPCODES and (length > 125 or not fin):
            raise WebSocketError("control frames must be short and unfragmented")
        if length > max_size:
            raise WebSocketError(f"frame of {length} bytes exceeds the {max_size}-byte limit", CLOSE_TOO_BIG)
        key = await reader.readexactly(4) if is_masked else b""
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionClosed(CLOSE_NO_STATUS, "stream ended") from exc
    return Frame(fin, opcode, _apply_mask(payload, key) if is_masked else payload)


class WebSocket:
    """A connection after the handshake.  ``recv()`` answers pings and the close handshake."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        is_client: bool,
        subprotocol: str | None = None,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.is_client = is_client
        self.subprotocol = subprotocol
        self.max_message = max_message
        self.close_sent = False
        self.closed: ConnectionClosed | None = None

    @property
    def open(self) -> bool:
        return self.closed is None and not self.close_sent

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.writer.is_closing():
            raise ConnectionClosed(CLOSE_NO_STATUS, "transport closed")
        self.writer.write(encode_frame(opcode, payload, mask=self.is_client))

    def send_nowait(self, data: bytes | str) -> None:
        """Queue a data message (text if *data* is a str) without waiting for the socket."""
        if not self.open:
            raise ConnectionClosed(self.closed.code if self.closed else CLOSE_NO_STATUS, "already closing")
        if isinstance(data, str):
            self._write(OP_TEXT, data.encode())
        else:
            self._write(OP_BINARY, data)

    async def send(self, data: bytes | str) -> None:
        self.send_nowait(data)
        await self.writer.drain()

    def buffered(self) -> int:
        """Bytes queued in the transport but not yet sent."""
        transport = self.writer.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    async def drain(self) -> None:
        await self.writer.drain()

    async def recv(self) -> Message:
        """The next data message; raises :class:`ConnectionClosed` after the close handshake."""
        parts: list[bytes] = []
        size, first_opcode = 0, None
        while True:
            if self.closed is not None:
                raise self.closed
            try:
                frame = await read_frame(self.reader, masked=not self.is_client, max_size=self.max_message)
            except WebSocketError as exc:
                await self.close(exc.code, str(exc))
                self.closed = ConnectionClosed(exc.code, str(exc))
                raise
            except ConnectionClosed as exc:
                self.closed = exc
                raise
            if frame.opcode == OP_PING:
                with contextlib.suppress(ConnectionClosed):
                    self._write(OP_PONG, frame.payload)
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode == OP_CLOSE:
                code, reason = parse_close_payload(frame.payload)
                if not self.close_sent:
                    with contextlib.suppress(ConnectionClosed):
                        self._write(OP_CLOSE, close_payload(code if code != CLOSE_NO_STATUS else CLOSE_NORMAL))
                    self.close_sent = True
                self.closed = ConnectionClosed(code, reason)
                await self._shutdown_transport()
                raise self.closed
            if frame.opcode == OP_CONT and first_opcode is None:
                await self._fail("continuation frame without a start")
            if frame.opcode != OP_CONT and first_opcode is not None:
                await self._fail("new data frame inside a fragmented message")
            if first_opcode is None:
                first_opcode = frame.opcode
            size += len(frame.payload)
            if size > self.max_message:
                await self._fail(f"message exceeds the {self.max_message}-byte limit", CLOSE_TOO_BIG)
            parts.append(frame.payload)
            if frame.fin:
                return Message(b"".join(parts), first_opcode == OP_TEXT)

    async def _fail(self, message: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        await self.close(code, message)
        self.closed = ConnectionClosed(code, message)
        raise WebSocketError(message, code)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "", *, timeout: float = 2.0) -> None:
        """Start (or finish) the closing handshake and close the transport.

        The peer's close frame is awaited for at most *timeout* seconds only when no
        other task is reading (callers that run a ``recv()`` loop just let it finish).
        """
        if not self.close_sent and not self.writer.is_closing():
            with contextlib.suppress(ConnectionClosed, ConnectionError):
                self._write(OP_CLOSE, close_payload(code, reason))
                await asyncio.wait_for(self.writer.drain(), timeout)
        self.close_sent = True
        await self._shutdown_transport()

    async def _shutdown_transport(self) -> None:
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError, OSError):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)


# -- handshakes -------------------------------------------------------------------------------


def header_tokens(value: str | None) -> list[str]:
    """Comma-separated header tokens, lower-cased."""
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


def server_handshake_response(headers: Mapping[str, str], supported: Sequence[str]) -> tuple[bytes, str | None]:
    """The ``101`` response for an upgrade request (*headers* keys lower-case).

    Returns the response bytes and the selected subprotocol; raises
    :class:`WebSocketError` (with an HTTP status in ``code``) if the request is not a
    valid WebSocket upgrade.
    """
    if "websocket" not in header_tokens(headers.get("upgrade")):
        raise WebSocketError("missing 'Upgrade: websocket'", 400)
    if "upgrade" not in header_tokens(headers.get("connection")):
        raise WebSocketError("missing 'Connection: Upgrade'", 400)
    if headers.get("sec-websocket-version", "").strip() != "13":
        raise WebSocketError("unsupported Sec-WebSocket-Version (need 13)", 426)
    key = headers.get("sec-websocket-key", "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError as exc:
        raise WebSocketError("bad Sec-WebSocket-Key", 400) from exc
    offered = [t.strip() for t in headers.get("sec-websocket-protocol", "").split(",") if t.strip()]
    selected = next((p for p in offered if p in supported), None)
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if selected:
        lines.append(f"Sec-WebSocket-Protocol: {selected}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), selected


async def read_http_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    """Read a request/status line and headers (keys lower-cased; repeats joined by ', ')."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise WebSocketError("HTTP head too large", 431) from exc
    except asyncio.IncompleteReadError as exc:
        raise ConnectionClosed(CLOSE_NO_STATUS, "stream ended before the HTTP head") from exc
    if len(raw) > HANDSHAKE_LIMIT:
        raise WebSocketError("HTTP head too large", 431)
    lines = raw.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise WebSocketError(f"malformed header line {line[:60]!r}", 400)
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return lines[0], headers


async def connect(
    host: str,
    port: int,
    path: str = "/",
    *,
    subprotocols: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    max_message: int = 64 << 20,
) -> WebSocket:
    """Open a client connection to ``ws://host:port/path`` (plain TCP only)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=HANDSHAKE_LIMIT * 4), timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        status, resp = await asyncio.wait_for(read_http_head(reader), timeout)
        parts = status.split(" ", 2)
        if len(parts) < 2 or parts[1] != "101":
            raise WebSocketError(f"handshake refused: {status!r}")
        if resp.get("sec-websocket-accept") != accept_key(key):
            raise WebSocketError("bad Sec-WebSocket-Accept in the handshake response")
    except BaseException:
        writer.close()
        raise
    return WebSocket(
        reader, writer, is_client=True, subprotocol=resp.get("sec-websocket-protocol"), max_message=max_message
    )
