"""Every declared service, and the intrinsic sshd and web terminal."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..model import CheckFailed, CheckSkipped
from ..session import INTRINSIC_PORTS, SmokeSession, probe, wait_for
from . import Check
from ._net import container_pid, listening_ports

HTTP_PROTOCOLS = {"http"}
DEFAULT_URL_TEMPLATE = "{protocol}://{host}:{port}/"
DROPBEAR_PROBE = (
    "import os, json; print(json.dumps(any(os.access(p, os.X_OK) for p in "
    "('/opt/kernel/dropbear', '/opt/kernel/dropbearmulti'))))"
)
WEBTERM_PROBE = (
    "import os, json; print(json.dumps(os.path.isdir('/opt/kernel/webterm-assets') or "
    "os.access('/opt/kernel/ttyd', os.X_OK)))"
)


def _is_listening(session: SmokeSession, port: int) -> bool:
    return port in listening_ports(container_pid(session.kernel.container))


def render_url(template: str, protocol: str, host_port: int) -> str:
    scheme = "http" if protocol in ("http", "preopen") else protocol
    return (template or DEFAULT_URL_TEMPLATE).format(protocol=scheme, host="127.0.0.1", port=host_port)


def http_status(url: str, timeout: float) -> int:
    """GET *url* following redirects; 4xx/5xx are answers too. Retries connection errors until *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, urllib.error.URLError) as exc:
            if time.monotonic() >= deadline:
                raise CheckFailed(f"GET {url} failed: {exc}") from None
            time.sleep(0.5)


def service_check(name: str) -> Check:
    def run(session: SmokeSession) -> str:
        entry = next((e for e in session.facts.services if e.name == name), None)
        assert entry is not None
        c = session.agent(timeout=120)
        apps = {a.name: a for a in c.get_apps().data}
        request = {"name": name, "port": entry.ports[0], "ports": list(entry.ports), "protocol": entry.protocol, "options": {}}
        res = c.start_service(request, timeout=180)
        if res.status not in ("started", "running"):
            raise CheckFailed(f"start-service answered {res.status}: {res.error}", session.kernel.logs()[-3000:])
        port = entry.ports[0]
        app = apps.get(name)
        url = render_url(app.url_template if app else "", entry.protocol, session.kernel.host_port(port))
        session.notes[f"url:{name}"] = url
        if entry.protocol == "preopen":  # opened by the image itself (a model service, bootstrap.sh)
            state = "listening" if _is_listening(session, port) else "not listening (yet)"
            return f"preopen: start-service answered {res.status}; port {port} {state}; {url}"
        if not wait_for(lambda: _is_listening(session, port), timeout=session.scaled(10)):
            raise CheckFailed(f"start-service said {res.status} but nothing listens on port {port}")
        if entry.protocol in HTTP_PROTOCOLS:
            status = http_status(url, timeout=session.scaled(60))
            if status >= 500:
                raise CheckFailed(f"GET {url} answered HTTP {status}")
            return f"{res.status}; {url} answered HTTP {status}"
        return f"{res.status}; port {port} listening ({entry.protocol}); {url}"

    return Check(f"service.{name}", f"service {name}", run)


def service_checks(session_services: list[str]) -> list[Check]:
    return [service_check(n) for n in session_services]


def sshd(session: SmokeSession) -> str:
    port = INTRINSIC_PORTS["sshd"]
    has_dropbear = bool(probe(session, DROPBEAR_PROBE))
    if not wait_for(lambda: _is_listening(session, port), timeout=session.scaled(20 if has_dropbear else 2)):
        if not has_dropbear:
            raise CheckSkipped("no dropbear in /opt/kernel (the krunner bundle provides it)")
        raise CheckFailed(f"dropbear is in /opt/kernel but nothing listens on {port}", session.kernel.logs()[-3000:])
    if shutil.which("ssh") is None:
        raise CheckSkipped("port 2200 is open, but this host has no ssh client to log in with")
    if session.timeout_scale != 1.0:
        # qemu-user (7.2) runs its own binfmt wrapper for fexecve(/proc/self/exe), which dropbear uses to
        # re-execute itself per connection: a login cannot work under emulation, only on the real platform
        raise CheckSkipped("port 2200 is open; login not checked under emulation (qemu-user cannot run "
                           "dropbear's per-connection re-exec)")
    key_path = session.kernel.work_dir / "id_container"
    if not wait_for(key_path.exists, timeout=session.scaled(20)):
        raise CheckFailed("no /home/work/id_container key was generated")
    tmp = Path(tempfile.mkdtemp(prefix="bai-smoke-ssh-"))
    try:
        key = tmp / "id"
        shutil.copyfile(key_path, key)
        key.chmod(0o600)
        argv = ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
                "-p", str(session.kernel.host_port(port)), "work@127.0.0.1", "echo ssh-$((6*7))"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=session.scaled(30))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if out.returncode != 0 or "ssh-42" not in out.stdout:
        raise CheckFailed(f"ssh login with the generated key failed (exit {out.returncode})", out.stderr[-2000:])
    return "logged in with the generated key and ran a command"


def web_terminal(session: SmokeSession) -> str:
    port = INTRINSIC_PORTS["ttyd"]
    if not probe(session, WEBTERM_PROBE):
        raise CheckSkipped("no web terminal in /opt/kernel (webterm-assets or ttyd; the krunner bundle provides it)")
    if not wait_for(lambda: _is_listening(session, port), timeout=session.scaled(20)):
        raise CheckFailed(f"the web terminal is in /opt/kernel but nothing listens on {port}", session.kernel.logs()[-3000:])
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from krunner.webterm import protocol as tty

    async def round_trip() -> str:
        url = f"ws://127.0.0.1:{session.kernel.host_port(port)}/ws"
        ws = await connect(url, subprotocols=["tty"], open_timeout=10, proxy=None)
        try:
            await ws.send(tty.encode_auth(100, 30))
            await ws.send(tty.encode_input("echo term-$((6*7))-ok\r"))
            output = bytearray()
            deadline = time.monotonic() + 15
            while b"term-42-ok" not in output and time.monotonic() < deadline:
                message = await asyncio.wait_for(ws.recv(decode=False), max(0.1, deadline - time.monotonic()))
                command, payload = tty.decode_server_message(message)
                if command == tty.OUTPUT:
                    output += payload
            return output.decode(errors="replace")
        except (asyncio.TimeoutError, ConnectionClosed):
            return ""
        finally:
            await ws.close()

    text = asyncio.run(round_trip())
    if "term-42-ok" not in text:
        raise CheckFailed("the web terminal did not echo a command within 15 s", text[-1000:])
    return "WebSocket handshake (tty) and an echoed command"


CHECKS = [
    Check("intrinsic.sshd", "intrinsic sshd", sshd),
    Check("intrinsic.webterm", "intrinsic web terminal", web_terminal),
]
