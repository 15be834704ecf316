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

from krunner.webterm import protocol as tty
from krunner.webterm.page import ASSET_FILES
from krunner.webterm.websocket import ConnectionClosed, WebSocket, connect

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


class Client:
    """A ttyd client: a background task collects OUTPUT frames and title/preferences."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.output = bytearray()
        self.title: str | None = None
        self.preferences: dict[str, object] | None = None
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, port: int, columns: int = 80, rows: int = 24) -> Client:
        ws = await connect("127.0.0.1", port, "/ws", subprotocols=["tty"], timeout=5)
        assert ws.subprotocol == "tty"
        await ws.send(tty.encode_auth(columns, rows))
        return cls(ws)

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.recv()
                command, payload = tty.decode_server_message(message.data)
                if command == tty.OUTPUT:
                    self.output += payload
                elif command == tty.SET_WINDOW_TITLE:
                    self.title = payload.decode()
                else:
                    self.preferences = json.loads(payload)
        except ConnectionClosed as exc:
            self.closed.set_result(exc.code)

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
        ws = await connect("127.0.0.1", server, "/ws", subprotocols=["tty"], timeout=5)
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
