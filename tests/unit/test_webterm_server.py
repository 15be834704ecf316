"""The web terminal server run on the host, driven over HTTP and ttyd's WebSocket protocol."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from krunner.webterm import protocol as tty
from krunner.webterm.page import ASSET_FILES

REPO = Path(__file__).resolve().parents[2]
SHELL = "/bin/bash"

pytestmark = pytest.mark.timeout(60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early ({proc.returncode}): {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("server did not start listening")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("webterm")
    port = _free_port()
    proc = _start(tmp, port)
    try:
        _wait_listening(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert rc == 0, proc.stderr.read().decode()  # type: ignore[union-attr]


def _start(tmp: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    assets = tmp / "assets"
    assets.mkdir(exist_ok=True)
    for name in ASSET_FILES:
        (assets / name).write_text(f"/* dummy {name} */\n")
    env = {**os.environ, "HOME": str(tmp), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "krunner.webterm", "--port", str(port), "--host", "127.0.0.1",
         "--assets", str(assets), "--shell", SHELL, "--cwd", str(tmp), *extra],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _get(port: int, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


async def _connect(port: int, path: str = "/ws", **kwargs: object) -> ClientConnection:
    return await connect(
        f"ws://127.0.0.1:{port}{path}", subprotocols=["tty"], open_timeout=5, proxy=None, **kwargs  # type: ignore[arg-type]
    )


def _close_code(exc: ConnectionClosed) -> int:
    """The code of the close frame the server sent (1006 if none arrived)."""
    return exc.rcvd.code if exc.rcvd is not None else 1006


class Client:
    """A ttyd client: a background task collects OUTPUT frames and title/preferences."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.output = bytearray()
        self.title: str | None = None
        self.preferences: dict[str, object] | None = None
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, port: int, columns: int = 80, rows: int = 24) -> Client:
        ws = await _connect(port)
        assert ws.subprotocol == "tty"
        await ws.send(tty.encode_auth(columns, rows))
        return cls(ws)

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.recv(decode=False)
                command, payload = tty.decode_server_message(message)
                if command == tty.OUTPUT:
                    self.output += payload
                elif command == tty.SET_WINDOW_TITLE:
                    self.title = payload.decode()
                else:
                    self.preferences = json.loads(payload)
        except ConnectionClosed as exc:
            self.closed.set_result(_close_code(exc))

    async def type(self, text: str) -> None:
        await self.ws.send(tty.encode_input(text))

    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def expect(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.closed.done():
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"{pattern!r} not seen; output was {bytes(self.output)!r}")

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(asyncio.shield(self.closed), 5)

    async def shell_pid(self) -> int:
        await self.type("echo pid=$$:\r")
        return int((await self.expect(r"pid=(\d+):"))[1])


def _gone(pid: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.05)
    return False


def test_index_page(server: int) -> None:
    status, ctype, body = _get(server, "/")
    assert status == 200 and ctype.startswith("text/html")
    assert b"xterm.js" in body and b"'tty'" in body and b"window.term" in body


def test_token(server: int) -> None:
    status, ctype, body = _get(server, "/token")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"token": ""}


def test_assets_and_404(server: int) -> None:
    status, ctype, body = _get(server, "/assets/xterm.js")
    assert status == 200 and "javascript" in ctype and b"dummy xterm.js" in body
    assert _get(server, "/assets/../secret")[0] == 404
    assert _get(server, "/nope")[0] == 404
    # a proxy prefix that was not stripped still routes
    assert _get(server, "/proxy/abc/token")[0] == 200


def test_echo_resize_and_close(server: int) -> None:
    async def scenario() -> None:
        client = await Client.open(server, columns=90, rows=20)
        await client.type("echo hello-term\r")
        await client.expect(r"[\r\n]hello-term\r\n")  # the output line, not the echoed command
        assert client.title and client.preferences == {}
        await client.type("stty size\r")
        await client.expect(r"[\r\n]20 90\r\n")
        await client.ws.send(tty.encode_resize(101, 33))
        await client.type("stty size\r")
        await client.expect(r"[\r\n]33 101\r\n")
        pid = await client.shell_pid()
        await client.close()
        assert await asyncio.to_thread(_gone, pid), f"shell {pid} still alive 3 s after the socket closed"

    asyncio.run(scenario())


def test_each_connection_gets_its_own_shell(server: int) -> None:
    async def scenario() -> None:
        first, second = await Client.open(server), await Client.open(server)
        pid1, pid2 = await first.shell_pid(), await second.shell_pid()
        assert pid1 != pid2
        await first.close()
        assert await asyncio.to_thread(_gone, pid1)
        assert os.path.exists(f"/proc/{pid2}")
        await second.type("echo still-here\r")
        await second.expect(r"[\r\n]still-here\r\n")
        await second.close()
        assert await asyncio.to_thread(_gone, pid2)

    asyncio.run(scenario())


def test_shell_exit_closes_socket(server: int) -> None:
    async def scenario() -> None:
        client = await Client.open(server)
        await client.type("exit 0\r")
        assert await asyncio.wait_for(client.closed, 5) == 1000

    asyncio.run(scenario())


def test_bad_messages_are_ignored(server: int) -> None:
    async def scenario() -> None:
        client = await Client.open(server)
        for junk in (b"", b"9zzz", b"1not json", b'1{"columns": -5, "rows": 3}', b"1[]", "text frame"):
            await client.ws.send(junk)
        await client.ws.send(tty.encode_pause())
        await client.type("echo paused-$((1+1))\r")
        await asyncio.sleep(0.3)
        assert "paused-2" not in client.text()
        await client.ws.send(tty.encode_resume())
        await client.expect(r"[\r\n]paused-2\r\n")
        await client.close()

    asyncio.run(scenario())


def test_garbage_before_auth_is_ignored(server: int) -> None:
    async def scenario() -> None:
        ws = await _connect(server)
        await ws.send(b"0echo nope\r")
        await ws.send(b"{not json")
        await ws.send(tty.encode_auth(80, 24))
        client = Client(ws)
        await client.type("echo after-$((2+3))\r")
        await client.expect(r"[\r\n]after-5\r\n")
        assert "nope" not in client.text()
        await client.close()

    asyncio.run(scenario())


def test_sigterm_kills_shells_and_exits_0(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        _wait_listening(port, proc)

        async def open_shell() -> tuple[Client, int]:
            client = await Client.open(port)
            return client, await client.shell_pid()

        async def scenario() -> None:
            client, pid = await open_shell()
            proc.terminate()
            assert await asyncio.wait_for(client.closed, 5) == 1001
            assert await asyncio.to_thread(_gone, pid)

        asyncio.run(scenario())
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_startup_errors_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _start(tmp_path, port)
        _out, err = proc.communicate(timeout=10)
        assert proc.returncode == 2 and b"cannot listen on" in err
    missing = subprocess.run(
        [sys.executable, "-m", "krunner.webterm", "--assets", str(tmp_path / "none"), "--cwd", str(tmp_path)],
        cwd=REPO, capture_output=True, timeout=10,
    )
    assert missing.returncode == 2 and b"assets directory" in missing.stderr


# -- the handshake and framing rules, seen on the wire (the library implements them) ----------

RFC6455_KEY, RFC6455_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _raw_request(port: int, lines: list[str]) -> tuple[bytes, socket.socket]:
    """Send an HTTP head; return the response head and the open socket (caller closes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head, sock


def _upgrade(port: int, **overrides: str | None) -> tuple[bytes, socket.socket]:
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": RFC6455_KEY,
        "Sec-WebSocket-Protocol": "foo, tty",
        **overrides,
    }
    return _raw_request(port, ["GET /ws HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items() if v is not None)])


def _status(port: int, **overrides: str | None) -> tuple[int, bytes]:
    head, sock = _upgrade(port, **overrides)
    sock.close()
    return int(head.split(b" ", 2)[1]), head


def _frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    length = bytes([n]) if n < 126 else (bytes([126]) + n.to_bytes(2, "big") if n < 65536 else bytes([127]) + n.to_bytes(8, "big"))
    if not mask:
        return bytes([first]) + length + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([first, length[0] | 0x80]) + length[1:] + key + masked


def _close_code_after(sock: socket.socket, data: bytes) -> int:
    """Send *data*, then read server frames until its close frame; return the close code."""
    sock.sendall(data)
    buf = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        while len(buf) >= 2:
            n, offset = buf[1] & 0x7F, 2
            if n == 126:
                n, offset = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                n, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + n:
                break
            opcode, payload, buf = buf[0] & 0x0F, buf[offset : offset + n], buf[offset + n :]
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big")
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed without a close frame")
        buf += chunk
    raise AssertionError("no close frame within 10 s")


def test_handshake_response(server: int) -> None:
    status, head = _status(server)
    assert status == 101 and b"101 Switching Protocols" in head
    assert f"Sec-WebSocket-Accept: {RFC6455_ACCEPT}".encode() in head
    assert b"Sec-WebSocket-Protocol: tty" in head
    assert b"Sec-WebSocket-Extensions" not in _status(server, **{"Sec-WebSocket-Extensions": "permessage-deflate"})[1]
    status, head = _status(server, **{"Sec-WebSocket-Version": "8"})
    assert status == 426 and b"Sec-WebSocket-Version: 13" in head
    assert _status(server, **{"Sec-WebSocket-Key": "short"})[0] == 400
    assert _status(server, Upgrade=None)[0] == 400
    # a client offering no subprotocol is served (like ttyd), without choosing one
    status, head = _status(server, **{"Sec-WebSocket-Protocol": None})
    assert status == 101 and b"Sec-WebSocket-Protocol" not in head


def test_head_and_other_methods(server: int) -> None:
    head, sock = _raw_request(server, ["HEAD /token HTTP/1.1", "Host: x"])
    sock.settimeout(2)
    rest = sock.recv(4096)
    sock.close()
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 13" in head
    assert head.endswith(b"\r\n\r\n") and rest == b""  # no body
    head, sock = _raw_request(server, ["DELETE / HTTP/1.1", "Host: x"])
    sock.close()
    assert head.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in head


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (_frame(0x1, b"hi", mask=False), 1002),  # clients must mask
        (_frame(0x2, b"", rsv=0x40), 1002),  # RSV1 (compression) was never negotiated
        (_frame(0x9, b"", fin=False), 1002),  # fragmented ping
        (_frame(0x2, b"x" * ((1 << 20) + 1)), 1009),  # over the 1 MiB message limit
    ],
    ids=["unmasked", "rsv1", "fragmented-ping", "too-big"],
)
def test_frame_violations_close_the_connection(server: int, frame: bytes, code: int) -> None:
    head, sock = _upgrade(server)
    try:
        assert head.startswith(b"HTTP/1.1 101 ")
        assert _close_code_after(sock, frame) == code
    finally:
        sock.close()


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_input_message_sizes(server: int, size: int) -> None:
    """Inputs of every frame-length encoding reach the shell intact (counted by `wc -c`)."""

    async def scenario() -> None:
        client = await Client.open(server)
        await client.type(f"stty raw -echo; echo n=$(head -c {size} | wc -c); stty sane\r")
        await asyncio.sleep(0.3)
        await client.ws.send(tty.encode_input(b"y" * size))
        await client.expect(rf"n={size}\s", timeout=10)
        await client.close()

    asyncio.run(scenario())
