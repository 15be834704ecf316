"""Make sure a Docker engine is reachable, installing/starting ``dockerd`` if needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import docker
from docker.errors import DockerException

from ._common import LocalEnvError, file_lock, log

DOCKERD_LOG = Path("/var/log/bai-dockerd.log")
DOCKERD_PIDFILE = Path("/var/run/docker.pid")
ENGINE_WAIT_SECONDS = 60.0
PING_TIMEOUT_SECONDS = 5
CLIENT_TIMEOUT_SECONDS = 600  # builds/imports can keep one request busy for long


def _try_connect() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=PING_TIMEOUT_SECONDS)
        client.ping()
    except (DockerException, OSError):
        return None
    client.api.timeout = CLIENT_TIMEOUT_SECONDS  # builds/imports can be slow
    return client


def _apt_install(*packages: str) -> None:
    """``apt-get install -y`` as root; raises :class:`LocalEnvError` on failure."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        log(f"running: {' '.join(cmd)}")
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-20:])
            raise LocalEnvError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")


def _log_tail(lines: int = 15) -> str:
    try:
        return "\n".join(DOCKERD_LOG.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _pidfile_alive(pidfile: Path = DOCKERD_PIDFILE) -> bool:
    """True if the dockerd pid file names a live process (e.g. one still starting up)."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def _start_dockerd() -> subprocess.Popen[bytes]:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise LocalEnvError("dockerd is not installed")
    log(f"starting dockerd… (log: {DOCKERD_LOG})")
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(DOCKERD_LOG, "ab") as logf:
        return subprocess.Popen(
            [dockerd],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survive our exit, like nohup
            close_fds=True,
        )


def ensure_engine(wait_seconds: float = ENGINE_WAIT_SECONDS) -> docker.DockerClient:
    """Return a client for a running Docker engine.

    Fast path: the engine answers ``ping``. Otherwise (root only) install
    ``docker.io`` if ``dockerd`` is missing, start it in the background and wait
    up to *wait_seconds* for it. Raises :class:`LocalEnvError` on failure.
    """
    client = _try_connect()
    if client is not None:
        return client
    with file_lock("engine"):
        client = _try_connect()  # someone else may have started it meanwhile
        if client is not None:
            return client
        if os.geteuid() != 0:
            raise LocalEnvError("Docker engine is not reachable and we are not root (cannot start dockerd)")
        if shutil.which("dockerd") is None:
            log("dockerd not found; installing docker.io…")
            _apt_install("docker.io")
            client = _try_connect()  # the package may have started the service
            if client is not None:
                return client
        proc: subprocess.Popen[bytes] | None = None
        if _pidfile_alive():
            log("a dockerd process exists but does not answer yet; waiting for it…")
        else:
            proc = _start_dockerd()
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            client = _try_connect()
            if client is not None:
                log("dockerd is up")
                return client
            if proc is not None and proc.poll() is not None and not _pidfile_alive():
                raise LocalEnvError(
                    f"dockerd exited with code {proc.returncode} (log: {DOCKERD_LOG})\n{_log_tail()}"
                )
            time.sleep(0.5)
        raise LocalEnvError(
            f"Docker engine did not become ready within {wait_seconds:.0f}s (log: {DOCKERD_LOG})\n{_log_tail()}"
        )
