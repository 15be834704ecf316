"""Local registries for the tests: Debian's ``docker-registry`` (distribution v2) on 127.0.0.1.

Two kinds, each its own process on a free port with its own config, storage and log under a
state directory:

* ``plain`` – HTTP, no auth (the engine treats 127.0.0.0/8 as insecure, so ``docker push`` works);
* ``tls``   – HTTPS with a server certificate signed by a CA made here (``openssl``) and
  htpasswd basic auth (``htpasswd -B`` from apache2-utils; the registry only takes bcrypt).

:func:`ensure_registry` is idempotent: a healthy registry recorded in the state directory is
reused, anything else there is stopped and replaced. :func:`stop_registry` kills the process and
removes the directory. The packaged service (port 5000) is never left running: it is stopped
and disabled after installing, we only use ``/usr/bin/docker-registry`` with our own config.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ._common import LocalEnvError, file_lock, log

REGISTRY_BIN = Path("/usr/bin/docker-registry")
HTPASSWD_BIN = "htpasswd"
PACKAGES = ("docker-registry", "apache2-utils")
HOST = "127.0.0.1"
#: where ``python -m imagekit.localenv registry start`` keeps its registries
DEFAULT_STATE_ROOT = Path(os.environ.get("BAI_LOCALENV_REGISTRY_DIR", "/tmp/bai-localenv-registry"))
START_WAIT_SECONDS = 20.0
STATE_FILE = "registry.json"
USERNAME = "bai-test"

Kind = Literal["plain", "tls"]

#: registries started by this process, kept so they are reaped (and not reported as leaked)
_children: dict[int, subprocess.Popen[bytes]] = {}


class LocalRegistry(BaseModel):
    """A running local registry (also its on-disk record, ``<dir>/registry.json``)."""

    model_config = ConfigDict(frozen=True)

    kind: Kind
    host: str
    port: int
    pid: int
    directory: Path
    username: str | None = None
    password: str | None = None
    ca_cert: Path | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the registry part of an image reference."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @property
    def tls(self) -> bool:
        return self.kind == "tls"

    def ref(self, repository: str, tag: str = "latest") -> str:
        """``127.0.0.1:PORT/<repository>:<tag>``."""
        return f"{self.address}/{repository}:{tag}"

    def auth_header(self) -> dict[str, str]:
        """The ``Authorization: Basic`` header for this registry's test user (empty if no auth)."""
        if self.username is None or self.password is None:
            return {}
        token = b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def ssl_context(self) -> ssl.SSLContext | None:
        """A context trusting only this registry's CA (``None`` for plain HTTP)."""
        if self.ca_cert is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def docker_auth_config(self) -> dict[str, str] | None:
        """``auth_config`` for docker-py's ``images.push`` (never written to a Docker config file)."""
        if self.username is None or self.password is None:
            return None
        return {"username": self.username, "password": self.password}


# --- packages ---------------------------------------------------------------------------------


def _disable_packaged_service() -> None:
    """Stop/disable the distribution's own service so nothing stays on port 5000."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "disable", "--now", "docker-registry.service"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if Path("/etc/init.d/docker-registry").exists():
        subprocess.run(["/etc/init.d/docker-registry", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if shutil.which("update-rc.d"):
            subprocess.run(["update-rc.d", "docker-registry", "disable"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def ensure_registry_packages() -> None:
    """Install ``docker-registry`` and ``apache2-utils`` (htpasswd) if missing; idempotent."""
    if REGISTRY_BIN.exists() and shutil.which(HTPASSWD_BIN) and shutil.which("openssl"):
        return
    with file_lock("registry-packages"):
        if REGISTRY_BIN.exists() and shutil.which(HTPASSWD_BIN) and shutil.which("openssl"):
            return
        if os.geteuid() != 0:
            raise LocalEnvError(
                "the registry tests need Debian's docker-registry and apache2-utils packages "
                "(and openssl); install them as root: apt-get install docker-registry apache2-utils openssl"
            )
        from .engine import _apt_install

        log("installing the local registry: docker-registry, apache2-utils…")
        _apt_install(*PACKAGES, "openssl")
        _disable_packaged_service()
        if not REGISTRY_BIN.exists() or not shutil.which(HTPASSWD_BIN):
            raise LocalEnvError(f"{REGISTRY_BIN} or htpasswd still missing after apt-get install")


# --- credentials and certificates ------------------------------------------------------------


def _run(argv: list[str], what: str, *, input_text: str | None = None) -> str:
    proc = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise LocalEnvError(f"{what} failed (exit {proc.returncode}): {' '.join(argv[:3])}…\n{proc.stderr[-2000:]}")
    return proc.stdout


def _make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it → (ca.crt, server.crt, server.key)."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt, ext = (directory / n for n in ("server.key", "server.csr", "server.crt", "server.ext"))
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-subj", "/CN=bai-imagekit test CA", "-keyout", str(ca_key), "-out", str(ca_crt),
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
         "making the test CA")
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}",
          "-keyout", str(key), "-out", str(csr)], "making the registry key")
    ext.write_text(
        f"subjectAltName=IP:{HOST},DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt)], "signing the registry certificate")
    return ca_crt, crt, key


def _write_htpasswd(path: Path, username: str, password: str) -> None:
    out = _run([HTPASSWD_BIN, "-Bbn", username, password], "htpasswd -B")
    path.write_text(out)


# --- the process ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _config_yaml(storage: Path, port: int, tls: tuple[Path, Path] | None, htpasswd: Path | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: {HOST}:{port}",
        f"  secret: {secrets.token_hex(16)}",
    ]
    if tls is not None:
        cert, key = tls
        lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: bai-test-registry", f"    path: {htpasswd}"]
    return "\n".join(lines) + "\n"


def _probe(registry: LocalRegistry, timeout: float = 2.0) -> int | None:
    """HTTP status of ``GET /v2/`` with the registry's credentials, or None if it does not answer."""
    req = urllib.request.Request(f"{registry.url}/v2/", headers=registry.auth_header())
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=registry.ssl_context()) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def _pid_is_registry(pid: int, directory: Path) -> bool:
    """True if *pid* is alive and is a docker-registry serving the config in *directory*."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(str(directory / "config.yml").encode() == arg for arg in cmdline)


def is_healthy(registry: LocalRegistry) -> bool:
    """The recorded process is ours and ``GET /v2/`` answers 200 with its credentials."""
    return _pid_is_registry(registry.pid, registry.directory) and _probe(registry) == 200


def _log_tail(directory: Path, lines: int = 15) -> str:
    try:
        return "\n".join((directory / "registry.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _launch(kind: Kind, directory: Path) -> LocalRegistry:
    storage = directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    username = password = None
    ca = tls = htpasswd = None
    if kind == "tls":
        ca, cert, key = _make_ca_and_server_cert(directory)
        tls = (cert, key)
        username, password = USERNAME, secrets.token_urlsafe(12)
        htpasswd = directory / "htpasswd"
        _write_htpasswd(htpasswd, username, password)
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probing and binding
        port = _free_port()
        config = directory / "config.yml"
        config.write_text(_config_yaml(storage, port, tls, htpasswd))
        with open(directory / "registry.log", "ab") as logf:
            proc = subprocess.Popen(
                [str(REGISTRY_BIN), "serve", str(config)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        registry = LocalRegistry(kind=kind, host=HOST, port=port, pid=proc.pid, directory=directory,
                                 username=username, password=password, ca_cert=ca)
        deadline = time.monotonic() + START_WAIT_SECONDS
        while time.monotonic() < deadline:
            status = _probe(registry)
            if status == 200:
                _children[proc.pid] = proc
                (directory / STATE_FILE).write_text(registry.model_dump_json(indent=2))
                log(f"{kind} registry up at {registry.url} (pid {proc.pid}, dir {directory})")
                return registry
            if status is not None:
                proc.kill()
                proc.wait(timeout=5)
                raise LocalEnvError(f"the {kind} registry at {registry.url} answers GET /v2/ with HTTP {status}\n"
                                    f"{_log_tail(directory)}")
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        last_error = _log_tail(directory)
        if "address already in use" not in last_error:
            break
    raise LocalEnvError(f"the {kind} registry did not come up within {START_WAIT_SECONDS:.0f}s "
                        f"(log: {directory / 'registry.log'})\n{last_error}")


def read_registry(directory: Path) -> LocalRegistry | None:
    """The registry recorded in *directory*, or None (no record or an unreadable one)."""
    try:
        return LocalRegistry.model_validate_json((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _check_ours(directory: Path) -> None:
    """Refuse to reuse or remove a directory that is neither absent, empty nor a registry's."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise LocalEnvError(f"{directory} is not a directory")
    if any(directory.iterdir()) and not ((directory / STATE_FILE).exists() or (directory / "config.yml").exists()):
        raise LocalEnvError(f"{directory} holds other files; give a registry its own (new or empty) directory")


def ensure_registry(kind: Kind, directory: Path | None = None) -> LocalRegistry:
    """Return a healthy registry of *kind* kept in *directory* (default: the shared state root),
    starting one if needed. Safe to call repeatedly and from several processes."""
    directory = Path(directory or DEFAULT_STATE_ROOT / kind).resolve()
    ensure_registry_packages()
    with file_lock(f"registry-{directory}"):
        _check_ours(directory)
        current = read_registry(directory)
        if current is not None and current.kind == kind and is_healthy(current):
            return current
        if directory.exists():
            _stop(current, directory)
        directory.mkdir(parents=True, mode=0o700)
        return _launch(kind, directory)


def _stop(registry: LocalRegistry | None, directory: Path) -> None:
    if registry is not None:
        if _pid_is_registry(registry.pid, directory):
            try:
                os.kill(registry.pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and _pid_is_registry(registry.pid, directory):
                    time.sleep(0.05)
                if _pid_is_registry(registry.pid, directory):
                    os.kill(registry.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        child = _children.pop(registry.pid, None)
        if child is not None:  # reap it if it is our child
            child.wait(timeout=5)
    shutil.rmtree(directory, ignore_errors=True)


def stop_registry(registry_or_dir: LocalRegistry | Path) -> None:
    """Kill the registry process and remove its directory (config, certificates, storage); idempotent."""
    directory = registry_or_dir.directory if isinstance(registry_or_dir, LocalRegistry) else Path(registry_or_dir)
    directory = directory.resolve()
    with file_lock(f"registry-{directory}"):
        _check_ours(directory)
        _stop(read_registry(directory), directory)
        log(f"registry in {directory} stopped and removed")
