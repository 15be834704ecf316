"""Kernels for tests: the runner on the host (fast) or in a real container (docker).

Both expose the same small interface (``client()``, ``pty_client()``, ``stop()``)
so a protocol scenario is written once and runs against either.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from imagekit.harness.client import AgentClient, PtyClient
from imagekit.localenv.checkout import REPO_ROOT



def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class HostKernel:
    """``python -m krunner`` on the host with private dirs and loopback-only ports."""

    def __init__(
        self,
        runtime_type: str,
        runtime_path: str | None = None,
        env: dict[str, str] | None = None,
        service_defs: Callable[[Path], None] | None = None,
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="krunner-host-"))
        if service_defs is not None:
            service_defs(self.tmp / "service-defs")
        self.work = self.tmp / "work"
        self.config = self.tmp / "config"
        self.work.mkdir()
        self.config.mkdir()
        self.ports = dict(zip(("replin", "replout", "ptyin", "ptyout"), free_ports(4)))
        (self.config / "intrinsic-ports.json").write_text(json.dumps(self.ports))
        full_env = dict(os.environ)
        full_env.update(
            {
                "KRUNNER_WORK_DIR": str(self.work),
                "KRUNNER_CONFIG_DIR": str(self.config),
                "KRUNNER_SERVICE_DEFS_DIR": str(self.tmp / "service-defs"),
                "BACKENDAI_INPUT_SOCKET": str(self.tmp / "input.sock"),
                "KRUNNER_BIND_HOST": "127.0.0.1",
                "PYTHONPATH": str(REPO_ROOT),
            }
        )
        full_env.update(env or {})
        argv = [sys.executable, "-m", "krunner", "--debug", runtime_type]
        if runtime_path:
            argv.append(runtime_path)
        self.log_path = self.tmp / "runner.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=full_env, cwd=self.work, stdout=self._log, stderr=subprocess.STDOUT)
        self._clients: list[AgentClient | PtyClient] = []

    def client(self, timeout: float = 30.0) -> AgentClient:
        self.close_clients()  # PUSH round-robins between peers: one agent at a time
        c = AgentClient(self.ports["replin"], self.ports["replout"], timeout=timeout)
        self._clients.append(c)
        c.wait_ready(timeout=30)
        return c

    def pty_client(self) -> PtyClient:
        c = PtyClient(self.ports["ptyin"], self.ports["ptyout"])
        self._clients.append(c)
        return c

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close_clients(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        self.close_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> "HostKernel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DockerKernel:
    """A real kernel container started the way the agent starts it."""

    def __init__(
        self, image: str, runtime_type: str, runtime_path: str | None = None, *, bundle: bool = False, **kwargs: object
    ) -> None:
        """*bundle*: mount the self-contained krunner bundle (+ its /opt/kernel tools) with the
        checkout's krunner overlaid, instead of the dev volume (which needs the image's python3.11)."""
        from imagekit.harness.container import start_kernel_container
        from imagekit.localenv.krunner_mounts import bundle_mount, dev_checkout_mount

        krunner = bundle_mount(overlay_checkout=True) if bundle else dev_checkout_mount()
        self.kc = start_kernel_container(image, runtime_type, runtime_path, krunner=krunner, **kwargs)
        self._clients: list[AgentClient | PtyClient] = []

    def client(self, timeout: float = 30.0) -> AgentClient:
        self.close_clients()  # PUSH round-robins between peers: one agent at a time
        c = AgentClient(self.kc.repl_in_port, self.kc.repl_out_port, timeout=timeout)
        self._clients.append(c)
        try:
            c.wait_ready(timeout=60)
        except TimeoutError:
            raise AssertionError(f"runner did not answer status; container logs:\n{self.kc.logs()}") from None
        return c

    def pty_client(self) -> PtyClient:
        c = PtyClient(self.kc.pty_in_port, self.kc.pty_out_port)
        self._clients.append(c)
        return c

    def logs(self) -> str:
        return self.kc.logs()

    def exec_run(self, cmd: list[str] | str, user: str | None = None) -> tuple[int, str]:
        return self.kc.exec_run(cmd, user=user)

    def close_clients(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()

    def stop(self) -> None:
        self.close_clients()
        self.kc.stop()

    def __enter__(self) -> "DockerKernel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


SSHD_PORT = 2200


def ssh_options(key: Path) -> list[str]:
    """Host-side OpenSSH client options for a throw-away kernel (no prompts, no known_hosts)."""
    return [
        "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
    ]


def ssh_login_and_sftp(kc, remote_command: str) -> str:
    """Log in to the kernel's intrinsic sshd with its generated key and run *remote_command*, then
    upload a file with ``sftp -b`` and check it arrived in ``/home/work`` (127.0.0.1 only).

    *kc* is an :class:`imagekit.harness.container.KernelContainer`; returns the command's stdout.
    """
    import pytest

    if shutil.which("ssh") is None or shutil.which("sftp") is None:
        pytest.fail("the OpenSSH client (ssh, sftp) is needed on the host: apt-get install openssh-client")
    key_in_work = kc.work_dir / "id_container"
    # written by the runner's sshd preparation (dropbearkey + dropbearconvert)
    assert wait_until(key_in_work.exists, timeout=60), f"no id_container; logs:\n{kc.logs()[-3000:]}"
    tmp = Path(tempfile.mkdtemp(prefix="bai-ssh-"))
    try:
        key = tmp / "id"
        shutil.copyfile(key_in_work, key)
        key.chmod(0o600)
        port = kc.host_port(SSHD_PORT)
        argv = ["ssh", *ssh_options(key), "-p", str(port), "work@127.0.0.1", remote_command]
        deadline = time.monotonic() + 30
        while True:  # the runner starts the intrinsic sshd in the background
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if out.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert out.returncode == 0, f"{out.stderr}\nlogs:\n{kc.logs()[-3000:]}"

        (tmp / "payload.txt").write_text("sftp works\n")
        batch = tmp / "batch"
        batch.write_text(f"put {tmp / 'payload.txt'} /home/work/uploaded-by-sftp.txt\nls /home/work\n")
        sftp = subprocess.run(["sftp", *ssh_options(key), "-P", str(port), "-b", str(batch), "work@127.0.0.1"],
                              capture_output=True, text=True, timeout=30)
        assert sftp.returncode == 0, f"{sftp.stderr}\nlogs:\n{kc.logs()[-3000:]}"
        assert (kc.work_dir / "uploaded-by-sftp.txt").read_text() == "sftp works\n"
        assert "uploaded-by-sftp.txt" in sftp.stdout
        return out.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
