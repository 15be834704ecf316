"""Real apps from the service-def library, and the intrinsic sshd and web terminal, in a real kernel.

The reference image ``images/python`` (built with ``bai-imagekit build``) has JupyterLab and
TensorBoard installed with pip inside ``docker build`` and the library's definitions in
``/etc/backend.ai/service-defs``; the krunner bundle brings the sshd tools and the web terminal
to ``/opt/kernel``.  Every connection goes to 127.0.0.1 ports published by Docker.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from krunner.services.service_def import load_definition
from krunner.webterm import protocol as tty
from tests.kernels import DockerKernel, ssh_login_and_sftp

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
APP_PORTS = {"jupyterlab": 8090, "tensorboard": 6006}  # the library's ports (kernel.toml)
SSHD_PORT, TTYD_PORT = 2200, 7681
DEFAULT_URL_TEMPLATE = "{protocol}://{host}:{port}/"


@pytest.fixture(scope="module")
def services_kernel(reference_image):
    kernel = DockerKernel(
        reference_image("python"),
        "python",
        "/opt/py/bin/python",
        bundle=True,
        extra_ports=[*APP_PORTS.values(), SSHD_PORT, TTYD_PORT],
    )
    try:
        yield kernel
    finally:
        kernel.stop()


def _rendered_url(name: str, host_port: int) -> str:
    """The URL a client builds from the def's ``url_template`` (http default when it has none)."""
    template = load_definition(REPO / "service-defs" / f"{name}.json").url_template or DEFAULT_URL_TEMPLATE
    return template.format(protocol="http", host="127.0.0.1", port=host_port)


def _http_status(url: str, timeout: float = 60.0) -> int:
    """GET *url* (following redirects), retrying while the app finishes its own start-up."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
            last = exc
            time.sleep(0.5)
    raise AssertionError(f"GET {url} failed for {timeout:.0f}s: {last}")


@pytest.mark.parametrize("name", sorted(APP_PORTS))
def test_library_app_starts_and_answers_http_200(services_kernel, name):
    c = services_kernel.client()
    apps = {a.name for a in c.get_apps().data}
    assert name in apps, apps
    port = APP_PORTS[name]
    request = {"name": name, "port": port, "ports": [port], "protocol": "http", "options": {}}
    res = c.start_service(request)
    assert res.status == "started", f"{res.error}\n{services_kernel.logs()[-3000:]}"
    url = _rendered_url(name, services_kernel.kc.host_port(port))
    assert _http_status(url) == 200
    assert c.start_service(request).status == "running"
    log = services_kernel.kc.work_dir / ".logs" / "services" / f"{name}.log"
    assert log.is_file() and log.stat().st_size > 0, "service output is not in its log file"


def test_intrinsic_sshd_login_and_sftp(services_kernel):
    out = ssh_login_and_sftp(services_kernel.kc, "echo ssh-ok; id -u; pwd")
    assert out.split() == ["ssh-ok", "1000", "/home/work"]


async def _terminal_round_trip(port: int) -> str:
    ws = await connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["tty"], open_timeout=10, proxy=None)
    assert ws.subprotocol == "tty"
    await ws.send(tty.encode_auth(100, 30))
    await ws.send(tty.encode_input("echo hello-$((6*7))-term\r"))
    output = bytearray()
    deadline = time.monotonic() + 15
    try:
        while b"hello-42-term" not in output and time.monotonic() < deadline:
            message = await asyncio.wait_for(ws.recv(decode=False), max(0.1, deadline - time.monotonic()))
            command, payload = tty.decode_server_message(message)
            if command == tty.OUTPUT:
                output += payload
    except (asyncio.TimeoutError, ConnectionClosed):
        pass
    finally:
        await ws.close()
    return output.decode(errors="replace")


def test_intrinsic_web_terminal_speaks_ttyd(services_kernel):
    kc = services_kernel.kc
    port = kc.host_port(TTYD_PORT)
    # the runner starts the terminal on its own; wait for its page (served over HTTP like ttyd's)
    assert _http_status(f"http://127.0.0.1:{port}/", timeout=30) == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/token", timeout=10) as resp:
        assert "token" in json.loads(resp.read())
    text = asyncio.run(_terminal_round_trip(port))
    assert "hello-42-term" in text, text
    # already started by the runner: the agent's start-service finds them running
    c = services_kernel.client()
    for name, port in (("ttyd", TTYD_PORT), ("sshd", SSHD_PORT)):
        res = c.start_service({"name": name, "port": port, "ports": [port], "protocol": "http", "options": {}})
        assert res.status == "running", (name, res.error)
