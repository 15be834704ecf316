"""Headless Chromium drives the real xterm.js page served by a host-run web terminal.

No Playwright/Selenium: Chromium is started with ``--remote-debugging-port=0`` and
driven over the Chrome DevTools Protocol (its WebSocket, spoken with the ``websockets``
client the web terminal's server is built on).  Only loopback traffic; every wait is bounded and
Chromium is always killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--window-size=1000,700",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.path.exists(CHROMIUM):
        if os.geteuid() != 0:
            pytest.skip(f"{CHROMIUM} is missing and we are not root (apt-get install chromium)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def assets() -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to fetch xterm.js")
    from imagekit.localenv.webterm_assets import ensure_webterm_assets

    return ensure_webterm_assets()


@pytest.fixture
def webterm(assets: Path, tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "krunner.webterm", "--port", str(port), "--host", "127.0.0.1",
         "--assets", str(assets), "--shell", "/bin/bash", "--cwd", str(home)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        assert proc.poll() is None, f"web terminal exited ({proc.returncode})"
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        _wait_for(listening, 10, "the web terminal to listen")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def devtools(chromium: str, tmp_path: Path) -> Iterator[int]:
    """Start Chromium; yield its DevTools HTTP port."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log_path = tmp_path / "chromium.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        active = profile / "DevToolsActivePort"

        def port() -> int | None:
            if proc.poll() is not None:
                raise AssertionError(f"chromium exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            lines = active.read_text().splitlines() if active.exists() else []
            return int(lines[0]) if lines and lines[0].isdigit() else None

        yield _wait_for(port, 30, "chromium's DevToolsActivePort")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


class Cdp:
    """Just enough of the Chrome DevTools Protocol: commands by id, events ignored."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        await self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))

        async def reply() -> dict[str, Any]:
            while True:
                message = json.loads(await self.ws.recv())
                if message.get("id") == call_id:
                    return message

        message = await asyncio.wait_for(reply(), 15)
        if "error" in message:
            raise AssertionError(f"{method} failed: {message['error']}")
        return message.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"JS error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_js(self, expression: str, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    async def press(self, key: str, code: int, text: str) -> None:
        common = {"key": key, "code": key, "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code}
        await self.call("Input.dispatchKeyEvent", type="keyDown", text=text, unmodifiedText=text, **common)
        await self.call("Input.dispatchKeyEvent", type="keyUp", **common)


BUFFER_LINES_JS = """(() => {
  const b = window.term.buffer.active, lines = [];
  for (let i = 0; i < b.length; i++) { lines.push(b.getLine(i).translateToString(true)); }
  return lines;
})()"""


@pytest.fixture(scope="module")
def container_webterm(localenv) -> Iterator[int]:
    """The web terminal as a kernel serves it: started by the runner from the krunner bundle's
    /opt/kernel tools in a real container; yields the 127.0.0.1 port Docker publishes for 7681."""
    from tests.kernels import DockerKernel

    kernel = DockerKernel("bai-test/python:latest", "python", "/usr/bin/python3", bundle=True, extra_ports=[7681])
    try:
        port = kernel.kc.host_port(7681)

        def page() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        _wait_for(page, 30, "the kernel's web terminal page")
        yield port
    finally:
        kernel.stop()


def test_page_runs_a_command(webterm: int, devtools: int) -> None:
    _type_in_browser(webterm, devtools)


@pytest.mark.docker
def test_page_served_by_a_kernel_runs_a_command(container_webterm: int, devtools: int) -> None:
    _type_in_browser(container_webterm, devtools)


def _type_in_browser(webterm: int, devtools: int) -> None:
    """Chromium opens the page, types `echo hello-term` and Enter; the output shows in xterm.js."""
    with urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list", timeout=10) as resp:
        targets = json.load(resp)
    page = next(t for t in targets if t.get("type") == "page")
    ws_path = "/" + page["webSocketDebuggerUrl"].split("/", 3)[3]

    async def scenario() -> list[str]:
        cdp = Cdp(
            await connect(
                f"ws://127.0.0.1:{devtools}{ws_path}", open_timeout=10, proxy=None, max_size=64 << 20, max_queue=None
            )
        )
        try:
            await cdp.call("Page.navigate", url=f"http://127.0.0.1:{webterm}/")
            await cdp.wait_js(
                "!!(window.webterm && window.webterm.connected && window.term)", 20, "the terminal to connect"
            )
            error = await cdp.evaluate("window.webterm.error || null")
            assert error is None, error
            await cdp.wait_js(
                "window.webterm.messages >= 3", 10, "the title, preferences and first output messages"
            )
            await cdp.evaluate("window.term.focus()")
            await cdp.call("Input.insertText", text="echo hello-term")
            await cdp.press("Enter", 13, "\r")
            lines = await cdp.wait_js(
                f"(() => {{ const l = {BUFFER_LINES_JS}; return l.some(x => x.trim() === 'hello-term') && l; }})()",
                10,
                "'hello-term' in the terminal buffer",
            )
            assert "bash" in await cdp.evaluate("document.title")
            return lines
        finally:
            await cdp.ws.close()

    lines = asyncio.run(scenario())
    assert any(line.rstrip().endswith("echo hello-term") for line in lines), lines
