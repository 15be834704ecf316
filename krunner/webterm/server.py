"""The web terminal server: HTTP (page, token, assets) and ttyd's ``/ws`` endpoint.

Routing looks only at the end of the request path, so the server also works when
a proxy forwards requests without stripping its path prefix:

* ``.../`` or ``.../index.html`` → the terminal page
* ``.../token`` → ``{"token": ""}``
* ``.../assets/<name>`` → one of :data:`~krunner.webterm.page.ASSET_FILES`
* ``.../ws`` → WebSocket (subprotocol ``tty``), one shell per connection
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from . import protocol as tty
from .page import ASSET_FILES, render_index
from .session import ShellSession
from .websocket import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    ConnectionClosed,
    WebSocket,
    WebSocketError,
    header_tokens,
    read_http_head,
    server_handshake_response,
)

log = logging.getLogger("krunner.webterm")

AUTH_TIMEOUT_SECONDS = 60.0
HTTP_IDLE_SECONDS = 60.0
SEND_HIGH_WATER = 256 * 1024
MAX_CLIENT_MESSAGE = 1 << 20
EXIT_FLUSH_SECONDS = 2.0


class AssetError(Exception):
    """The assets directory is missing or incomplete."""


def load_assets(directory: Path) -> dict[str, bytes]:
    """Read every file of :data:`ASSET_FILES` from *directory* (kept in memory)."""
    if not directory.is_dir():
        raise AssetError(f"web terminal assets directory {directory} does not exist")
    missing = [name for name in ASSET_FILES if not (directory / name).is_file()]
    if missing:
        raise AssetError(f"web terminal assets directory {directory} lacks {', '.join(missing)}")
    return {name: (directory / name).read_bytes() for name in ASSET_FILES}


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    assets: dict[str, bytes]
    title: str = ""
    preferences: dict[str, object] = dataclasses.field(default_factory=dict)

    def window_title(self) -> str:
        return self.title or f"{' '.join(self.argv)} ({socket.gethostname()})"


@dataclasses.dataclass(frozen=True, slots=True)
class _Response:
    status: HTTPStatus
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    cache: str = "no-store"
    extra: tuple[tuple[str, str], ...] = ()


def _error(status: HTTPStatus, message: str | None = None, **kwargs: object) -> _Response:
    return _Response(status, ((message or status.phrase) + "\n").encode(), **kwargs)  # type: ignore[arg-type]


def _encode_response(resp: _Response, *, head_only: bool, keep_alive: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {resp.status.value} {resp.status.phrase}",
        f"Content-Type: {resp.content_type}",
        f"Content-Length: {len(resp.body)}",
        f"Cache-Control: {resp.cache}",
        "X-Content-Type-Options: nosniff",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{k}: {v}" for k, v in resp.extra),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + resp.body


class WebTermServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._index = render_index(config.window_title())
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._connections: set[_TerminalConnection] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None or not self._server.sockets:
            return self.config.port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def sessions(self) -> list[ShellSession]:
        return [c.session for c in self._connections if c.session is not None]

    async def start(self) -> None:
        """Bind and listen (raises ``OSError``, e.g. when the port is taken)."""
        self._server = await asyncio.start_server(
            self._on_client, self.config.host, self.config.port, reuse_address=True
        )
        log.info("web terminal on http://%s:%d/ runs %s", self.config.host, self.port, " ".join(self.config.argv))

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening, close every WebSocket (1001), terminate every shell."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.request_close(CLOSE_GOING_AWAY, "server shutting down")
        for task in list(self._handlers):
            if not any(c.task is task for c in self._connections):
                task.cancel()  # idle HTTP keep-alive connections
        if self._handlers:
            _done, pending = await asyncio.wait(list(self._handlers), timeout=grace)
            for task in pending:
                task.cancel()
        for session in self.sessions:
            await session.terminate()
        log.info("web terminal stopped")

    # -- HTTP ---------------------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve_http(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # noqa: BLE001 - one bad connection must never stop the server
            log.exception("unexpected error on a client connection")
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not self._closing:
            try:
                request_line, headers = await asyncio.wait_for(read_http_head(reader), HTTP_IDLE_SECONDS)
            except (ConnectionClosed, asyncio.TimeoutError):
                return
            except WebSocketError as exc:
                writer.write(_encode_response(_error(HTTPStatus(exc.code)), head_only=False, keep_alive=False))
                await writer.drain()
                return
            parts = request_line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                writer.write(_encode_response(_error(HTTPStatus.BAD_REQUEST), head_only=False, keep_alive=False))
                await writer.drain()
                return
            method, target, version = parts
            path = urlsplit(target).path or "/"
            has_body = headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers
            keep_alive = (
                version == "HTTP/1.1" and "close" not in header_tokens(headers.get("connection")) and not has_body
            )
            last = path.rsplit("/", 1)[-1]
            if last == "ws" and method == "GET" and not has_body:
                await self._serve_websocket(reader, writer, headers)
                return
            response = self._route(method, path, last, has_body)
            log.debug("%s %s -> %d", method, path, response.status.value)
            writer.write(_encode_response(response, head_only=method == "HEAD", keep_alive=keep_alive))
            await writer.drain()
            if not keep_alive:
                return

    def _route(self, method: str, path: str, last: str, has_body: bool) -> _Response:
        if method not in ("GET", "HEAD") or has_body:
            return _error(HTTPStatus.METHOD_NOT_ALLOWED, extra=(("Allow", "GET, HEAD"),))
        if last == "ws":
            return _error(HTTPStatus.BAD_REQUEST, "WebSocket endpoint: send an Upgrade request")
        if last == "token":
            return _Response(HTTPStatus.OK, json.dumps({"token": ""}).encode(), "application/json")
        if last in ASSET_FILES and path.endswith("/assets/" + last):
            return _Response(HTTPStatus.OK, self.config.assets[last], ASSET_FILES[last], "public, max-age=3600")
        if last in ("", "index.html"):
            return _Response(HTTPStatus.OK, self._index, "text/html; charset=utf-8")
        return _error(HTTPStatus.NOT_FOUND)

    # -- WebSocket ----------------------------------------------------------------------------

    async def _serve_websocket(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]
    ) -> None:
        try:
            response, subprotocol = server_handshake_response(headers, [tty.SUBPROTOCOL])
        except WebSocketError as exc:
            extra = (("Sec-WebSocket-Version", "13"),) if exc.code == 426 else ()
            log.warning("refused a WebSocket upgrade: %s", exc)
            writer.write(
                _encode_response(_error(HTTPStatus(exc.code), str(exc), extra=extra), head_only=False, keep_alive=False)
            )
            await writer.drain()
            return
        writer.write(response)
        ws = WebSocket(reader, writer, is_client=False, subprotocol=subprotocol, max_message=MAX_CLIENT_MESSAGE)
        conn = _TerminalConnection(self, ws, writer.get_extra_info("peername"))
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)


class _TerminalConnection:
    """One WebSocket client and its shell."""

    def __init__(self, server: WebTermServer, ws: WebSocket, peer: object) -> None:
        self.server = server
        self.config = server.config
        self.ws = ws
        self.peer = peer
        self.session: ShellSession | None = None
        self.task = asyncio.current_task()
        self._drain_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        log.info("terminal client %s connected", self.peer)
        try:
            self._send(tty.encode_title(self.config.window_title()))
            self._send(tty.encode_preferences(self.config.preferences))
            await asyncio.wait_for(self._authenticate(), AUTH_TIMEOUT_SECONDS)
            while True:
                message = await self.ws.recv()
                self._dispatch(message.data)
        except asyncio.TimeoutError:
            log.warning("terminal client %s sent no auth message in %.0f s", self.peer, AUTH_TIMEOUT_SECONDS)
            await self.ws.close(CLOSE_POLICY, "no auth message")
        except ConnectionClosed as exc:
            log.info("terminal client %s disconnected (%d)", self.peer, exc.code)
        except WebSocketError as exc:
            log.warning("terminal client %s broke the WebSocket protocol: %s", self.peer, exc)
        finally:
            await self._cleanup()

    async def _authenticate(self) -> None:
        while self.session is None:
            message = await self.ws.recv()
            try:
                auth = tty.decode_auth(message.data)
            except tty.ProtocolError as exc:
                log.warning("terminal client %s: ignoring message before auth: %s", self.peer, exc)
                continue
            session = ShellSession(
                self.config.argv,
                env=self.config.env,
                cwd=self.config.cwd,
                columns=auth.columns,
                rows=auth.rows,
                on_output=self._on_output,
                on_exit=self._on_exit,
            )
            try:
                session.start()
            except Exception as exc:  # noqa: BLE001 - report spawn failures to the client
                log.error("cannot start %s: %s", " ".join(self.config.argv), exc)
                self._send(tty.encode_output(f"\r\ncannot start {self.config.argv[0]}: {exc}\r\n".encode()))
                await self.ws.close(1011, "cannot start the shell")
                raise ConnectionClosed(1011, "cannot start the shell") from exc
            self.session = session

    def _dispatch(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        try:
            message = tty.decode_client_message(data)
        except tty.ProtocolError as exc:
            log.warning("terminal client %s: ignoring bad message: %s", self.peer, exc)
            return
        match message:
            case tty.Input(data=keys):
                session.write(keys)
            case tty.Resize(columns=columns, rows=rows):
                session.resize(columns, rows)
            case tty.Pause():
                session.pause("client")
            case tty.Resume():
                session.resume("client")

    # -- shell → client -----------------------------------------------------------------------

    def _send(self, data: bytes) -> bool:
        try:
            self.ws.send_nowait(data)
        except (ConnectionClosed, ConnectionError):
            return False
        return True

    def _on_output(self, data: bytes) -> None:
        if not self._send(tty.encode_output(data)) or self.session is None:
            return
        if self.ws.buffered() > SEND_HIGH_WATER and self._drain_task is None:
            self.session.pause("backpressure")
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await self.ws.drain()
        except (ConnectionError, ConnectionClosed):
            return
        finally:
            self._drain_task = None
        if self.session is not None:
            self.session.resume("backpressure")

    def _on_exit(self) -> None:
        log.info("shell of terminal client %s exited", self.peer)
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close_after_exit())

    async def _close_after_exit(self) -> None:
        with contextlib.suppress(ConnectionError, ConnectionClosed, asyncio.TimeoutError):
            await asyncio.wait_for(self.ws.drain(), EXIT_FLUSH_SECONDS)
        await self.ws.close(CLOSE_NORMAL, "shell exited")

    def request_close(self, code: int, reason: str) -> None:
        """Close from outside (server shutdown); ``run()`` then cleans up."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self.ws.close(code, reason))

    async def _cleanup(self) -> None:
        if self._drain_task is not None:
            self._drain_task.cancel()
        if self.ws.open:
            await self.ws.close(CLOSE_GOING_AWAY if self.server._closing else CLOSE_NORMAL)
        if self.session is not None:
            await self.session.terminate()
        if self._close_task is not None and self._close_task is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await self._close_task
