"""The self-contained krunner bundle in real kernel containers (imagekit/bundle).

Images: (a) Debian minbase without python3, (b) Debian with python3, (c) a static
busybox and nothing else, (d) a slim image whose default USER is an id that
/etc/passwd does not know.  The bundle volume is mounted at /opt/backend.ai and
its kernel tools at /opt/kernel; the entrypoint is the bundle's static binary.
In (a) and (c) the runner also starts the intrinsic sshd (the bundle's static
dropbearmulti and sftp-server); the host logs in with OpenSSH on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from imagekit.harness.client import AgentClient
from imagekit.harness.container import start_kernel_container
from imagekit.harness.krunner_mount import KrunnerMount
from tests import scenarios
from tests.kernels import SSHD_PORT, ssh_login_and_sftp

pytestmark = pytest.mark.docker

MINBASE = "bai-local/debian:bookworm"
PYTHON_IMAGE = "bai-test/python:latest"
BUSYBOX = "bai-test/busybox:latest"
NONROOT = "bai-test/nonroot:latest"


@pytest.fixture(scope="module")
def bundle(localenv) -> KrunnerMount:
    from imagekit.localenv.krunner_mounts import bundle_mount
    from imagekit.localenv.test_images import ensure_test_images

    ensure_test_images(["busybox", "nonroot"])
    return bundle_mount()


class BundleKernel:
    def __init__(self, mount: KrunnerMount, image: str, runtime_type: str, runtime_path: str | None = None, **kw):
        self.kc = start_kernel_container(image, runtime_type, runtime_path, krunner=mount, name_prefix="bai-bundle", **kw)
        self._client: AgentClient | None = None

    def client(self, timeout: float = 30.0) -> AgentClient:
        if self._client is not None:
            self._client.close()
        self._client = AgentClient(self.kc.repl_in_port, self.kc.repl_out_port, timeout=timeout)
        try:
            self._client.wait_ready(timeout=60)
        except TimeoutError:
            raise AssertionError(f"runner did not answer status; logs:\n{self.kc.logs()}") from None
        return self._client

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        self.kc.stop()


def _kernel(mount, image, runtime_type, runtime_path=None, **kw):
    k = BundleKernel(mount, image, runtime_type, runtime_path, **kw)
    try:
        yield k
    finally:
        k.stop()


@pytest.fixture(scope="module")
def minbase_shell(bundle):
    yield from _kernel(bundle, MINBASE, "shell", extra_ports=[SSHD_PORT])


@pytest.fixture(scope="module")
def busybox_shell(bundle):
    yield from _kernel(bundle, BUSYBOX, "shell", extra_ports=[SSHD_PORT])


@pytest.fixture(scope="module")
def python_kernel(bundle):
    yield from _kernel(bundle, PYTHON_IMAGE, "python", "/usr/bin/python3")


def _run(c: AgentClient, command: str) -> str:
    c.send("exec", command)
    r = c.collect()
    assert r.exit_code == 0, (command, r.stdout, r.stderr)
    return r.stdout


def _common_protocol(c: AgentClient) -> None:
    scenarios.status_and_apps(c)
    scenarios.replies_for_every_op(c)
    scenarios.garbage_frames_then_query(c, "echo ok", "ok\n")
    scenarios.batch_sequencing(c)


# ----------------------------------------------------------------------------- (a) minbase, no python3


def test_minbase_has_no_python(minbase_shell):
    c = minbase_shell.client()
    assert _run(c, "command -v python3 || echo none").strip() == "none"


def test_minbase_shell_protocol(minbase_shell):
    _common_protocol(minbase_shell.client())


def test_minbase_shell_interrupt(minbase_shell):
    scenarios.interrupt_nested_shell(minbase_shell.client(), scenarios.SLEEP_PROBE)


def test_minbase_user_processes_see_the_image(minbase_shell):
    c = minbase_shell.client()
    r = c.query("echo uid=$(id -u) lib=[$LD_LIBRARY_PATH]; readlink /proc/$PPID/exe; tr '\\0' ' ' < /proc/$PPID/cmdline; "
                "echo; grep -c python3.11-real /proc/$PPID/maps")
    assert r.stdout.startswith("uid=1000 lib=[]"), r.stdout
    # the runner (the shell's parent) runs the bundle's interpreter through the bundle's own loader,
    # under its own name (krunner/proctitle.py)
    _, exe, cmdline, mapped = r.stdout.splitlines()[:4]
    assert exe == "/opt/backend.ai/lib/ld-linux-x86-64.so.2" and int(mapped) > 0, r.stdout
    assert cmdline.strip() == "bai-krunner", r.stdout
    # user processes use the image's libc, not the bundle's
    out = _run(c, "ldd /bin/ls | grep libc.so")
    assert "/opt/backend.ai" not in out and "libc.so.6" in out


def test_minbase_app_runtime(bundle):
    k = BundleKernel(bundle, MINBASE, "app")
    try:
        c = k.client()
        scenarios.status_and_apps(c)
        scenarios.replies_for_every_op(c)
        scenarios.batch_sequencing(c)
    finally:
        k.stop()


# ----------------------------------------------------------------------------- (b) Debian with python3


def test_python_image_protocol(python_kernel):
    c = python_kernel.client()
    scenarios.status_and_apps(c)
    scenarios.replies_for_every_op(c)
    scenarios.garbage_frames_then_query(c, "print('ok')", "ok\n")
    scenarios.batch_sequencing(c)


def test_python_image_query_and_interrupt(python_kernel):
    c = python_kernel.client()
    scenarios.python_query_basics(c)
    scenarios.python_interrupt(python_kernel.client())
    scenarios.interrupt_nested_shell(python_kernel.client(), scenarios.SLEEP_PROBE)


def test_user_code_runs_on_the_images_python(python_kernel):
    c = python_kernel.client()
    r = c.query("import sys, os; print(sys.executable, sys.prefix, os.getuid(), os.environ.get('LD_LIBRARY_PATH'))")
    assert r.stdout == "/usr/bin/python3 /usr 1000 None\n", r.stderr


# ----------------------------------------------------------------------------- (c) static busybox only


def test_busybox_has_no_libc(busybox_shell):
    c = busybox_shell.client()
    probe = ("if [ -e /lib64/ld-linux-x86-64.so.2 ] || [ -e /lib/x86_64-linux-gnu/libc.so.6 ]; "
             "then echo has-libc; else echo no-libc; fi; readlink /bin/sh")
    assert _run(c, probe) == "no-libc\n/bin/busybox\n"


def test_busybox_shell_protocol(busybox_shell):
    _common_protocol(busybox_shell.client())


def test_busybox_shell_interrupt_and_user(busybox_shell):
    c = busybox_shell.client()
    scenarios.interrupt_nested_shell(c, scenarios.SLEEP_PROBE)
    assert c.query("id -u; id -g; echo $HOME").stdout == "1000\n1000\n/home/work\n"
    assert "work:x:1000:1000:" in _run(c, "cat /etc/passwd")


def test_busybox_launcher_and_su_exec(bundle):
    import docker

    client = docker.from_env()
    mounts = bundle.docker_mounts()
    code = ("import sys, subprocess; print(sys.prefix, sys.executable); "
            "print(subprocess.run([sys.executable, '-c', 'import zmq, sys; print(sys.prefix)'], "
            "capture_output=True, text=True).stdout.strip())")
    out = client.containers.run(BUSYBOX, ["-s", "-c", code], entrypoint=["/opt/backend.ai/bin/python"],
                                mounts=mounts, remove=True, network_disabled=True).decode()
    assert out == "/opt/backend.ai /opt/backend.ai/bin/python\n/opt/backend.ai\n"
    out = client.containers.run(BUSYBOX, ["4321:8765,42", "/bin/sh", "-c", "id -u; id -g; id -G"],
                                entrypoint=["/opt/kernel/su-exec"], mounts=mounts, remove=True,
                                network_disabled=True).decode()
    assert out.split() == ["4321", "8765", "8765", "42"]


# ----------------------------------------------------------------------------- intrinsic sshd (static dropbear)


def test_bundle_ships_static_sshd_tools(bundle):
    for name in ("dropbearmulti", "sftp-server"):
        tool = Path(bundle.kernel_dir) / name
        head = tool.read_bytes()[:64]
        assert head[:4] == b"\x7fELF", name
        # static: readelf finds no program interpreter
        out = subprocess.run(["readelf", "-lW", str(tool)], capture_output=True, text=True)
        if out.returncode == 0:
            assert "INTERP" not in out.stdout, name





def test_minbase_intrinsic_sshd_and_sftp(minbase_shell):
    """Debian without python: the login shell from /etc/passwd (bash) runs the command as uid 1000."""
    assert ssh_login_and_sftp(minbase_shell.kc, "echo ok; echo $SHELL; id -u").split() == ["ok", "/bin/bash", "1000"]
    c = minbase_shell.client()
    # the server is the bundle's multi-call binary (re-executed per connection via /proc/self/exe)
    assert "/opt/kernel/dropbearmulti dropbear" in _run(c, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")


def test_busybox_intrinsic_sshd_and_sftp(busybox_shell):
    """Only a static busybox in the image (no libc, no /etc/shells): dropbear and sftp-server still work."""
    assert ssh_login_and_sftp(busybox_shell.kc, "echo ok; echo $SHELL; id -u").split() == ["ok", "/bin/sh", "1000"]


# ----------------------------------------------------------------------------- (d) non-root USER, unknown uid


def test_nonroot_image_user_runs_as_is(bundle):
    """The image's USER (1001, not in /etc/passwd) starts the entrypoint; uid-match names the same id."""
    k = BundleKernel(bundle, NONROOT, "shell", uid=1001, gid=1001)
    try:
        c = k.client()
        scenarios.status_and_apps(c)
        scenarios.batch_sequencing(c)
        assert _run(c, "id -u; id -g; pwd; grep -c ':1001:' /etc/passwd || true") == "1001\n1001\n/home/work\n0\n"
        assert "not running as root" in k.kc.logs()
    finally:
        k.stop()


def test_nonroot_image_started_as_root_gets_the_target_uid(bundle):
    """Started as root (as the agent's entrypoint expects): the unknown uid 1000 becomes user 'work'."""
    k = BundleKernel(bundle, NONROOT, "shell", resources={"user": "0"})
    try:
        c = k.client()
        scenarios.status_and_apps(c)
        scenarios.replies_for_every_op(c)
        scenarios.interrupt_nested_shell(c, scenarios.SLEEP_PROBE)
        assert c.query("id -un; id -u; echo $HOME").stdout == "work\n1000\n/home/work\n"
    finally:
        k.stop()


# ----------------------------------------------------------------------------- image bootstrap


def test_image_bootstrap_exports_and_exit(bundle, tmp_path):
    script = tmp_path / "bootstrap.sh"
    script.write_text("#!/bin/sh\nexport BOOT_VAR=from-bootstrap\n(sleep 300 &)\necho bootstrap-ran\n")
    script.chmod(0o755)
    k = BundleKernel(bundle, MINBASE, "shell", extra_mounts=[(script, "/opt/container/bootstrap.sh")])
    try:
        c = k.client()
        assert _run(c, "echo $BOOT_VAR") == "from-bootstrap\n"
        assert "bootstrap-ran" in k.kc.logs()
    finally:
        k.stop()
    script.write_text("#!/bin/sh\nexport BOOT_VAR=lost\nexit 7\n")
    k = BundleKernel(bundle, MINBASE, "shell", extra_mounts=[(script, "/opt/container/bootstrap.sh")])
    try:
        c = k.client()  # an `exit` in the bootstrap does not end the entrypoint
        assert _run(c, "echo [$BOOT_VAR]") == "[]\n"
        assert "its exports are ignored" in k.kc.logs()
    finally:
        k.stop()


# ----------------------------------------------------------------------------- volume repair


def test_install_repairs_a_tampered_volume(bundle):
    import docker
    from docker.types import Mount

    from imagekit.bundle.volume import install_volume, remove_volume
    from imagekit.localenv.krunner_mounts import ensure_krunner_bundle

    client = docker.from_env()
    tarball = ensure_krunner_bundle().tarball
    name = f"bai-test-krunner-tamper-{int(time.time())}"
    try:
        first = install_volume(tarball, name=name)
        assert first.action == "created" and not first.problems
        assert install_volume(tarball, name=name).action == "up-to-date"
        tamper = (
            "echo evil >> /vol/lib/python3.11/os.py; rm /vol/kernel/su-exec; touch /vol/extra-file; "
            "chmod 777 /vol/bin/python; rm /vol/VERSION"
        )
        client.containers.run(MINBASE, ["sh", "-c", tamper], mounts=[Mount("/vol", name, type="volume")], remove=True)
        repaired = install_volume(tarball, name=name)
        assert repaired.action == "repaired"
        text = "\n".join(repaired.problems)
        for needle in ("lib/python3.11/os.py: content differs", "missing kernel/su-exec", "unexpected extra-file",
                       "bin/python: mode 0777", "missing VERSION"):
            assert needle in text, text
        assert install_volume(tarball, name=name).action == "up-to-date"
        # a half-extracted volume (no VERSION marker, files missing) is redone too
        client.containers.run(MINBASE, ["sh", "-c", "rm -rf /vol/lib/python3.11/site-packages /vol/VERSION"],
                              mounts=[Mount("/vol", name, type="volume")], remove=True)
        assert install_volume(tarball, name=name).action == "repaired"
    finally:
        remove_volume(name)


# ----------------------------------------------------------------------------- krunner build's base image


def test_unusable_base_image_is_exit_2_naming_the_option(tmp_path):
    """An invalid reference fails before any registry is asked (nothing is pulled here)."""
    import sys

    out = subprocess.run([sys.executable, "-m", "imagekit.cli", "krunner", "build", "--base-image", "Not/A:Valid:Ref",
                          "--output", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Not/A:Valid:Ref" in out.stderr and "--base-image IMAGE" in out.stderr, out.stderr
    assert not any(tmp_path.iterdir())
