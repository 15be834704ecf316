"""Real-Docker checks for the test set-up (imagekit.localenv) and imagekit.harness.container."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import pytest
from docker.types import Mount

from imagekit.harness.container import (
    KERNEL_PORTS,
    runner_command,
    start_kernel_container,
)
from imagekit.localenv.base_image import BASE_IMAGE_TAG, ensure_base_image
from imagekit.localenv.engine import ensure_engine
from imagekit.localenv.images import CONTEXT_HASH_LABEL, ensure_image
from imagekit.localenv.krunner_dev import (
    DEV_SITE_PACKAGES,
    dev_volume_name,
    ensure_dev_krunner_volume,
)
from imagekit.localenv.krunner_mounts import dev_checkout_mount
from imagekit.localenv.test_images import TEST_IMAGES, ensure_test_images

pytestmark = pytest.mark.docker

PY_IMAGE = TEST_IMAGES["python"].tag


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return ensure_engine()


@pytest.fixture(scope="module")
def dev_volume(client: docker.DockerClient) -> str:
    ensure_test_images(["python"], client=client)
    return ensure_dev_krunner_volume(client=client)


def test_base_image_is_debian12(client: docker.DockerClient) -> None:
    assert ensure_base_image(client=client) == BASE_IMAGE_TAG
    out = client.containers.run(BASE_IMAGE_TAG, ["cat", "/etc/debian_version"], remove=True)
    assert out.decode().strip().startswith("12.")


def test_ensure_image_second_call_is_noop(client: docker.DockerClient) -> None:
    spec = TEST_IMAGES["python"]
    base = ensure_base_image(client=client)
    ensure_image(spec.context_dir, spec.tag, base, client=client)
    first = client.images.get(spec.tag)
    started = time.monotonic()
    assert ensure_image(spec.context_dir, spec.tag, base, client=client) == spec.tag
    assert time.monotonic() - started < 3.0
    assert client.images.get(spec.tag).id == first.id
    assert first.labels[CONTEXT_HASH_LABEL]
    assert first.labels["ai.backend.runtime-type"] == "python"


def test_ensure_image_rebuilds_on_context_change(client: docker.DockerClient, tmp_path: Path) -> None:
    tag = "bai-test/localenv-selftest:latest"
    base = ensure_base_image(client=client)
    (tmp_path / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY data.txt /data.txt\n")
    (tmp_path / "data.txt").write_text("one\n")
    try:
        ensure_image(tmp_path, tag, base, client=client)
        first = client.images.get(tag).id
        (tmp_path / "data.txt").write_text("two\n")
        ensure_image(tmp_path, tag, base, client=client)
        second = client.images.get(tag).id
        assert second != first
        out = client.containers.run(tag, ["cat", "/data.txt"], remove=True)
        assert out.decode() == "two\n"
    finally:
        try:
            client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_dev_volume_provides_runner_python(client: docker.DockerClient, dev_volume: str) -> None:
    assert dev_volume == dev_volume_name()
    script = (
        "import zmq, uvloop, msgpack, pydantic, jinja2, ptyprocess, os, sys;"
        f"assert os.path.isdir('{DEV_SITE_PACKAGES}/krunner') and os.path.isdir('{DEV_SITE_PACKAGES}/ai');"
        "print(sys.version_info[:2], open('/opt/backend.ai/VERSION').read().strip())"
    )
    out = client.containers.run(
        PY_IMAGE, ["/opt/backend.ai/bin/python", "-c", script], remove=True,
        mounts=[Mount("/opt/backend.ai", dev_volume, type="volume", read_only=True)],
    )
    assert out.decode().strip() == f"(3, 11) dev-{dev_volume.rsplit('.', 1)[1]}"


@pytest.fixture
def stub_entrypoint(tmp_path: Path) -> Path:
    """Stands in for krunner's entrypoint: records the runner command line, then idles."""
    ep = tmp_path / "entrypoint.sh"
    ep.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > /tmp/runner-args\nexec sleep 600\n')
    ep.chmod(0o755)
    return ep


@pytest.fixture
def kernel(dev_volume: str, stub_entrypoint: Path) -> Iterator:
    mount = replace(dev_checkout_mount(), entrypoint_host_path=stub_entrypoint)
    kc = start_kernel_container(
        PY_IMAGE, "python", "/usr/bin/python3", krunner=mount, env={"FOO": "bar"},
        extra_ports=(8080,), environ_txt={"ONLY_IN_FILE": "1"}, intrinsic_ports={"replin": 2000},
    )
    with kc:
        yield kc
    assert not kc.scratch_dir.exists()


def test_kernel_container_like_the_agent(client: docker.DockerClient, kernel) -> None:
    c = kernel.container
    ports = c.attrs["NetworkSettings"]["Ports"]
    for p in (*KERNEL_PORTS, 8080):
        bindings = ports[f"{p}/tcp"]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
    assert len({kernel.repl_in_port, kernel.repl_out_port, kernel.pty_in_port, kernel.pty_out_port}) == 4

    cfg, host = c.attrs["Config"], c.attrs["HostConfig"]
    assert cfg["Entrypoint"] == ["/opt/kernel/entrypoint.sh"]
    assert cfg["Tty"] and cfg["OpenStdin"] and cfg["StopSignal"] == "SIGINT"
    assert cfg["WorkingDir"] == "/home/work"
    assert host["Init"] is True and set(host["CapAdd"]) >= {"IPC_LOCK", "SYS_NICE"}
    assert cfg["Labels"]["ai.backend.kernel-id"] == kernel.kernel_id
    assert c.name.startswith("bai-test.python.") and c.name.endswith(kernel.kernel_id[:8])

    code, out = kernel.exec_run(["cat", "/tmp/runner-args"])
    assert code == 0 and out.splitlines() == runner_command("python", "/usr/bin/python3")

    code, out = kernel.exec_run(["cat", "/home/config/environ.txt"])
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["BACKENDAI_KERNEL_ID"] == kernel.kernel_id and env["BACKENDAI_KERNEL_IMAGE"] == PY_IMAGE
    assert env["LOCAL_USER_ID"] == "1000" and env["FOO"] == "bar" and env["ONLY_IN_FILE"] == "1"
    assert "ONLY_IN_FILE=1" not in cfg["Env"] and "FOO=bar" in cfg["Env"]
    assert kernel.exec_run(["cat", "/home/config/intrinsic-ports.json"])[1].strip() == '{"replin": 2000}'

    assert kernel.exec_run(["stat", "-c", "%u:%g", "/home/work"])[1].strip() == "1000:1000"
    assert kernel.exec_run(["touch", "/home/config/x"])[0] != 0  # read-only
    assert kernel.exec_run(["touch", "/opt/backend.ai/x"])[0] != 0  # read-only
    code, out = kernel.exec_run(["ls", f"{DEV_SITE_PACKAGES}/ai"])
    assert code == 0 and "backend" in out.split()
    code, out = kernel.exec_run(["/opt/backend.ai/bin/python", "-c", "import zmq; print(zmq.zmq_version())"], user="1000")
    assert code == 0, out
    # 1048576 like the agent, unless the engine is sandboxed (then clamped to its hard limit).
    nofile = {u["Name"]: u["Soft"] for u in (host.get("Ulimits") or [])}.get("nofile")
    if nofile is not None:
        assert kernel.exec_run(["sh", "-c", "ulimit -n"])[1].strip() == str(nofile)
