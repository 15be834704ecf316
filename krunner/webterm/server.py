"""The web terminal server: HTTP (page, token, assets) and ttyd's ``/ws`` endpoint.

HTTP and WebSocket come from the ``websockets`` library (``websockets.asyncio.server``):
its ``process_request`` hook answers the few plain HTTP requests (one per connection),
everything else is the library's WebSocket handshake and framing.

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

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..ptyshell import PtyShell
from . import protocol as tty
from .page import ASSET_FILES, render_index

log = logging.getLogger("krunner.webterm")

AUTH_TIMEOUT_SECONDS = 60.0
OPEN_TIMEOUT_SECONDS = 30.0  # to receive a complete HTTP request
CLOSE_TIMEOUT_SECONDS = 2.0  # to wait for the peer's close frame
SEND_HIGH_WATER = 256 * 1024  # pty output queued for the client: pause reading the pty above this
SEND_LOW_WATER = 64 * 1024  # ... and resume below this
OUTPUT_FRAME_MAX = 64 * 1024
SOCKET_WRITE_LIMIT = 64 * 1024  # websockets' send() waits while the socket buffer is above this
MAX_CLIENT_MESSAGE = 1 << 20
EXIT_FLUSH_SECONDS = 2.0
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_INTERNAL_ERROR = 1000, 1001, 1008, 1011


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


def _http_response(resp: _Response, *, head_only: bool) -> Response:
    headers = Headers(
        [
            ("Content-Type", resp.content_type),
            ("Content-Length", str(len(resp.body))),
            ("Cache-Control", resp.cache),
            ("X-Content-Type-Options", "nosniff"),
            ("Connection", "close"),
            *resp.extra,
        ]
    )
    return Response(resp.status.value, resp.status.phrase, headers, b"" if head_only else resp.body)


def _header_tokens(request: Request, name: str) -> list[str]:
    """Comma-separated tokens of every *name* header, lower-cased."""
    return [t.strip().lower() for v in request.headers.get_all(name) for t in v.split(",") if t.strip()]


def _select_tty(_connection: ServerConnection, offered: object) -> str | None:
    """``tty`` when the client offers it; like ttyd, a client offering none is served too."""
    return tty.SUBPROTOCOL if tty.SUBPROTOCOL in offered else None  # type: ignore[operator]


class WebTermServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._index = render_index(config.window_title())
        self._server: Server | None = None
        self._connections: set[_TerminalConnection] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None or not self._server.sockets:
            return self.config.port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def shells(self) -> list[PtyShell]:
        return [c.shell for c in self._connections if c.shell is not None]

    async def start(self) -> None:
        """Bind and listen (raises ``OSError``, e.g. when the port is taken)."""
        self._server = await serve(
            self._on_websocket,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            subprotocols=[tty.SUBPROTOCOL],
            select_subprotocol=_select_tty,
            compression=None,  # ttyd's page sends small frames; never negotiate permessage-deflate
            server_header=None,
            open_timeout=OPEN_TIMEOUT_SECONDS,
            close_timeout=CLOSE_TIMEOUT_SECONDS,
            max_size=MAX_CLIENT_MESSAGE,
            write_limit=SOCKET_WRITE_LIMIT,
            reuse_address=True,
        )
        log.info("web terminal on http://%s:%d/ runs %s", self.config.host, self.port, " ".join(self.config.argv))

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening, close every WebSocket (1001), terminate every shell."""
        self._closing = True
        if self._server is not None:
            self._server.close(code=CLOSE_GOING_AWAY, reason="server shutting down")
            try:
                await asyncio.wait_for(self._server.wait_closed(), grace)
            except TimeoutError:
                log.warning("connections still open %.0f s after shutdown began", grace)
        for shell in self.shells:
            await shell.terminate()
        log.info("web terminal stopped")

    # -- HTTP ---------------------------------------------------------------------------------

    def _process_request(self, _connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP requests; ``None`` lets a ``/ws`` upgrade through to the handshake."""
        method = request.method
        path = urlsplit(request.path).path or "/"
        last = path.rsplit("/", 1)[-1]
        if last == "ws" and method == "GET":
            if "websocket" not in _header_tokens(request, "Upgrade"):
                response = _error(HTTPStatus.BAD_REQUEST, "WebSocket endpoint: send an Upgrade request")
            elif request.headers.get_all("Sec-WebSocket-Version") != ["13"]:
                response = _error(
                    HTTPStatus.UPGRADE_REQUIRED,
                    "unsupported Sec-WebSocket-Version (need 13)",
                    extra=(("Sec-WebSocket-Version", "13"),),
                )
            else:
                return None
            log.warning("refused a WebSocket upgrade: %s", response.body.decode().strip())
            return _http_response(response, head_only=False)
        response = self._route(method, path, last)
        log.debug("%s %s -> %d", method, path, response.status.value)
        return _http_response(response, head_only=method == "HEAD")

    def _route(self, method: str, path: str, last: str) -> _Response:
        if method not in ("GET", "HEAD"):
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

    async def _on_websocket(self, ws: ServerConnection) -> None:
        conn = _TerminalConnection(self, ws)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)


class _TerminalConnection:
    """One WebSocket client and its shell.

    Pty output is queued here and sent by one writer task, so frames keep their order;
    above :data:`SEND_HIGH_WATER` queued bytes the pty is not read until the client
    has taken enough (back-pressure instead of unbounded memory).
    """

    def __init__(self, server: WebTermServer, ws: ServerConnection) -> None:
        self.server = server
        self.config = server.config
        self.ws = ws
        self.peer = ws.remote_address
        self.shell: PtyShell | None = None
        self._output = bytearray()
        self._output_ready = asyncio.Event()
        self._shell_exited = False
        self._writer: asyncio.Task[None] | None = None

    async def run(self) -> None:
        log.info("terminal client %s connected", self.peer)
        try:
            await self.ws.send(tty.encode_title(self.config.window_title()))
            await self.ws.send(tty.encode_preferences(self.config.preferences))
            try:
                await asyncio.wait_for(self._authenticate(), AUTH_TIMEOUT_SECONDS)
            except TimeoutError:
                log.warning("terminal client %s sent no auth message in %.0f s", self.peer, AUTH_TIMEOUT_SECONDS)
                await self.ws.close(CLOSE_POLICY, "no auth message")
                return
            if self.shell is None:
                return
            self._writer = asyncio.get_running_loop().create_task(self._write_output())
            while True:
                self._dispatch(await self.ws.recv(decode=False))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else (exc.sent.code if exc.sent is not None else 1006)
            log.info("terminal client %s disconnected (%d)", self.peer, code)
        finally:
            await self._cleanup()

    async def _authenticate(self) -> None:
        while self.shell is None:
            data = await self.ws.recv(decode=False)
            try:
                auth = tty.decode_auth(data)
            except tty.ProtocolError as exc:
                log.warning("terminal client %s: ignoring message before auth: %s", self.peer, exc)
                continue
            shell = PtyShell(
                self.config.argv,
                env=self.config.env,
                cwd=self.config.cwd,
                rows=auth.rows,
                columns=auth.columns,
                on_output=self._on_output,
                on_exit=self._on_exit,
            )
            try:
                shell.start()
            except Exception as exc:  # noqa: BLE001 - report spawn failures to the client
                log.error("cannot start %s: %s", " ".join(self.config.argv), exc)
                await self.ws.send(tty.encode_output(f"\r\ncannot start {self.config.argv[0]}: {exc}\r\n".encode()))
                await self.ws.close(CLOSE_INTERNAL_ERROR, "cannot start the shell")
                return
            self.shell = shell

    def _dispatch(self, data: bytes) -> None:
        shell = self.shell
        assert shell is not None
        try:
            message = tty.decode_client_message(data)
        except tty.ProtocolError as exc:
            log.warning("terminal client %s: ignoring bad message: %s", self.peer, exc)
            return
        match message:
            case tty.Input(data=keys):
                shell.write(keys)
            case tty.Resize(columns=columns, rows=rows):
                shell.resize(rows, columns)
            case tty.Pause():
                shell.pause("client")
            case tty.Resume():
                shell.resume("client")

    # -- shell → client -----------------------------------------------------------------------

    def _on_output(self, data: bytes) -> None:
        self._output += data
        self._output_ready.set()
        if len(self._output) > SEND_HIGH_WATER and self.shell is not None:
            self.shell.pause("backpressure")

    def _on_exit(self) -> None:
        log.info("shell of terminal client %s exited", self.peer)
        self._shell_exited = True
        self._output_ready.set()

    async def _send_output(self) -> None:
        while self._output:
            chunk = bytes(self._output[:OUTPUT_FRAME_MAX])
            del self._output[: len(chunk)]
            await self.ws.send(tty.encode_output(chunk))  # waits while the socket's buffer is full
            if len(self._output) < SEND_LOW_WATER and self.shell is not None:
                self.shell.resume("backpressure")

    async def _write_output(self) -> None:
        """The only sender of OUTPUT frames; after the shell exits, flush (bounded) and close 1000."""
        with contextlib.suppress(ConnectionClosed):
            while not self._shell_exited:
                await self._output_ready.wait()
                self._output_ready.clear()
                await self._send_output()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._send_output(), EXIT_FLUSH_SECONDS)
            await self.ws.close(CLOSE_NORMAL, "shell exited")

    async def _cleanup(self) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        if self.shell is not None:
            await self.shell.terminate()
