"""The aarch64 krunner bundle (cross-built on this x86_64 host) starts our runner under QEMU
emulation in arm64 images that have no Python: Debian minbase, and a static busybox alone.

Emulated start-up is slow (CPython + pydantic under qemu-user): the runner gets
:data:`READY_TIMEOUT` seconds to answer ``status``, and the measured start-up time is printed
(``-s``/``-rA`` show it), labelled as emulated.
"""

from __future__ import annotations

import json
import time

import pytest

from imagekit.bundle import kernel_dir_name, volume_name
from imagekit.harness.client import AgentClient
from imagekit.harness.container import start_kernel_container
from imagekit.harness.krunner_mount import KrunnerMount
from imagekit.localenv.checkout import BUNDLE_DIR
from imagekit.localenv.emulation import PLATFORM
from tests.kernels import SSHD_PORT, wait_until

#: status must answer within this under emulation (natively the runner is ready in about a second)
READY_TIMEOUT = 240.0
#: a query or batch under emulation
RUN_TIMEOUT = 120.0
ELF_MACHINE_AARCH64 = 0xB7


class EmulatedKernel:
    """A kernel container of a ``linux/arm64`` image with the aarch64 bundle, and its start-up time."""

    def __init__(self, mount: KrunnerMount, image: str) -> None:
        started = time.monotonic()
        self.kc = start_kernel_container(image, "shell", krunner=mount, name_prefix="bai-arm64", platform=PLATFORM,
                                         extra_ports=[SSHD_PORT])
        self.client = AgentClient(self.kc.repl_in_port, self.kc.repl_out_port, timeout=RUN_TIMEOUT)
        try:
            self.client.wait_ready(timeout=READY_TIMEOUT)
        except TimeoutError:
            logs = self.kc.logs()
            self.stop()
            raise AssertionError(f"runner did not answer status within {READY_TIMEOUT:.0f}s (emulated); "
                                 f"logs:\n{logs}") from None
        self.ready_seconds = time.monotonic() - started
        print(f"\n[aarch64] {image}: runner ready in {self.ready_seconds:.1f}s (emulated, qemu-user)")

    def stop(self) -> None:
        self.client.close()
        self.kc.stop()


def _kernel(mount: KrunnerMount, image: str):
    kernel = EmulatedKernel(mount, image)
    try:
        yield kernel
    finally:
        kernel.stop()


@pytest.fixture(scope="module")
def minbase_arm64(arm64_images, aarch64_bundle):
    yield from _kernel(aarch64_bundle, arm64_images["debian"])


@pytest.fixture(scope="module")
def busybox_arm64(arm64_images, aarch64_bundle):
    yield from _kernel(aarch64_bundle, arm64_images["busybox"])


def _elf_machine(path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


def test_bundle_is_aarch64(aarch64_bundle):
    """Name, manifest, loader and tools of the cross-built bundle are aarch64 (read on the host)."""
    manifest = json.loads((BUNDLE_DIR / "krunner-env.static-gnu.aarch64.manifest.json").read_text())
    assert manifest["arch"] == "aarch64"
    assert aarch64_bundle.volume == volume_name(manifest["volume_version"], "aarch64")
    assert aarch64_bundle.volume.endswith(".aarch64.static-gnu")
    paths = {entry["path"] for entry in manifest["files"]}
    assert "lib/ld-linux-aarch64.so.1" in paths and "lib/ld-linux-x86-64.so.2" not in paths
    assert not [p for p in paths if "x86_64-linux-gnu" in p]
    kernel = BUNDLE_DIR / kernel_dir_name("aarch64")
    for tool in ("entrypoint", "su-exec", "dropbearmulti", "sftp-server"):
        assert _elf_machine(kernel / tool) == ELF_MACHINE_AARCH64, tool


def test_minbase_arm64_shell_query_and_batch(minbase_arm64):
    c = minbase_arm64.client
    r = c.query("uname -m; command -v python3 || echo no-python; cat /etc/debian_version")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[:2] == ["aarch64", "no-python"] and lines[2].startswith("12."), r.stdout
    run = c.batch("", "echo building", "echo $((6 * 7)); uname -m; id -u")
    assert run.steps == {"clean": 0, "build": 0, "exec": 0}, (run.stdout, run.stderr)
    assert run.stdout == "building\n42\naarch64\n1000\n"


def test_busybox_arm64_shell_query_and_batch(busybox_arm64):
    c = busybox_arm64.client
    r = c.query("uname -m; ls /lib /lib64 >/dev/null 2>&1 || echo no-libc; readlink /bin/sh")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert r.stdout == "aarch64\nno-libc\n/bin/busybox\n"
    run = c.batch("", "", "echo $((6 * 7)); uname -m; id -u")
    assert run.steps["exec"] == 0, (run.stdout, run.stderr)
    assert run.stdout == "42\naarch64\n1000\n"



def _sshd_up(kernel: EmulatedKernel) -> None:
    """The bundle's dropbear tools ran in the image (the login key was generated with dropbearkey and
    dropbearconvert) and the intrinsic sshd accepts connections on its published port.

    A login is not tried: qemu-user (7.2) runs its binfmt wrapper for fexecve(/proc/self/exe), which
    dropbear uses to re-execute itself per connection, so under emulation the child never answers.
    """
    key = kernel.kc.work_dir / "id_container"
    assert wait_until(key.exists, timeout=120), kernel.kc.logs()[-3000:]
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # listening inside the container (Docker's userland proxy would accept on the host side regardless)
    listen = f":{SSHD_PORT:04X} 00000000:0000 0A"
    assert wait_until(lambda: listen in kernel.kc.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"])[1],
                      timeout=120), kernel.kc.logs()[-3000:]
    assert "service sshd: started /opt/kernel/dropbearmulti" in kernel.kc.logs().replace("\r", "")


def test_minbase_arm64_intrinsic_sshd_is_up(minbase_arm64):
    _sshd_up(minbase_arm64)


def test_busybox_arm64_intrinsic_sshd_is_up(busybox_arm64):
    _sshd_up(busybox_arm64)


def test_agent_package_for_aarch64(aarch64_bundle, tmp_path):
    """``krunner package --arch aarch64``: the stock agent's plugin wheel for arm64 hosts carries the
    aarch64 tarball and names the aarch64 volume (the agent picks the tarball by its own arch)."""
    import subprocess
    import sys
    import zipfile

    out = subprocess.run([sys.executable, "-m", "imagekit.cli", "krunner", "package", "--arch", "aarch64",
                          "-o", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = tmp_path / out.stdout.strip().rsplit("/", 1)[-1]
    assert wheel.name.endswith("-py3-none-manylinux2014_aarch64.whl"), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        init = zf.read("ai/backend/krunner/static_gnu/__init__.py").decode()
    assert "ai/backend/krunner/static_gnu/krunner-env.static-gnu.aarch64.tar.xz" in names
    assert not [n for n in names if "x86_64" in n]
    assert f'VOLUME = "{aarch64_bundle.volume}"' in init
