"""The intrinsic ``sshd`` service: dropbear with SFTP, prepared like the agent expects (spec §6.8).

The service engine calls, for the service named ``sshd``:

* :func:`find_dropbear` once — no tools in the kernel dir means no sshd at all;
* :func:`prepare_sshd` once per runner start — keys, ``~/.ssh`` and the cluster
  SSH config; returns the host key to use;
* :func:`sshd_launch` for every (re)start — the dropbear argv.

Every location comes from :class:`~krunner.container_env.ContainerPaths` or an
overridable environment variable, so the whole preparation runs on a
developer's host (with fake key tools) in unit tests.

Unlike upstream, repeated starts are idempotent (RE-34): the cluster ``Host``
blocks are written once (a stale block we wrote earlier is updated in place)
and ``id_cluster.pub`` is added to ``authorized_keys`` only when missing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..container_env import ContainerPaths
from ..contract import SSHD_PORT
from .launch import LaunchSpec

log = logging.getLogger("krunner.services.sshd")

DEFAULT_PORT = SSHD_PORT
LAUNCH_TIMEOUT = 10.0
HELPER_TIMEOUT = 60.0  # seconds for one dropbearkey/dropbearconvert run (RSA keygen can be slow)
RSA_BITS = 2048
KERNEL_DIR_ENV = "KRUNNER_KERNEL_DIR"
DEFAULT_KERNEL_DIR = "/opt/kernel"
DROPBEAR_TMP_ENV = "KRUNNER_DROPBEAR_DIR"
DEFAULT_DROPBEAR_TMP = "/tmp/dropbear"
CLUSTER_REPLICAS_ENV = "BACKENDAI_CLUSTER_REPLICAS"
CLUSTER_SSH_PORT = SSHD_PORT  # every node of a cluster session listens on the same port


class SshdSetupError(RuntimeError):
    """Preparing the intrinsic sshd failed (a helper program failed, timed out or a file is unusable)."""


@dataclass(frozen=True)
class DropbearTools:
    """argv prefixes of the three dropbear programs (multi-call binary or separate files)."""

    server: tuple[str, ...]
    keygen: tuple[str, ...]
    convert: tuple[str, ...]


def kernel_dir() -> Path:
    return Path(os.environ.get(KERNEL_DIR_ENV, DEFAULT_KERNEL_DIR))


def dropbear_tmp_dir() -> Path:
    return Path(os.environ.get(DROPBEAR_TMP_ENV, DEFAULT_DROPBEAR_TMP))


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_dropbear(kernel_dir_path: Path | None = None) -> DropbearTools | None:
    """The dropbear tools in the kernel dir (``$KRUNNER_KERNEL_DIR``, default ``/opt/kernel``), or None.

    Prefers the multi-call ``dropbearmulti``; otherwise all three of ``dropbear``,
    ``dropbearkey`` and ``dropbearconvert`` must be present and executable.
    """
    base = kernel_dir_path if kernel_dir_path is not None else kernel_dir()
    multi = base / "dropbearmulti"
    if _executable(multi):
        return DropbearTools(
            server=(str(multi), "dropbear"),
            keygen=(str(multi), "dropbearkey"),
            convert=(str(multi), "dropbearconvert"),
        )
    parts = {name: base / name for name in ("dropbear", "dropbearkey", "dropbearconvert")}
    missing = [name for name, path in parts.items() if not _executable(path)]
    if not missing:
        return DropbearTools(
            server=(str(parts["dropbear"]),),
            keygen=(str(parts["dropbearkey"]),),
            convert=(str(parts["dropbearconvert"]),),
        )
    if len(missing) < len(parts):
        log.warning("incomplete dropbear tools in %s (missing %s); sshd disabled", base, ", ".join(missing))
    return None


def sshd_launch(tools: DropbearTools, port: int, host_key: str) -> LaunchSpec:
    """dropbear in the foreground, logging to stderr, no root/password-root logins, 15 s keepalive."""
    argv = [
        *tools.server,
        "-r", host_key,
        "-E",  # log to stderr
        "-F",  # foreground
        "-g",  # no password logins for root
        "-w",  # no root logins
        "-K", "15",  # keepalive
        "-I", "0",  # no idle timeout
        "-p", f"0.0.0.0:{int(port)}",
    ]
    return LaunchSpec(argv=argv, launch_timeout=LAUNCH_TIMEOUT)


# --------------------------------------------------------------------------- helpers


async def _run(argv: Sequence[str], timeout: float) -> str:
    """Run a helper program; return its stdout, raise :class:`SshdSetupError` on failure or timeout."""
    shown = " ".join(argv)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        raise SshdSetupError(f"cannot run {shown}: {exc.strerror or exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise SshdSetupError(f"{shown} did not finish within {timeout:g}s") from None
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip() or out.decode(errors="replace").strip()
        raise SshdSetupError(f"{shown} failed (exit {proc.returncode}): {detail[-500:]}")
    return out.decode(errors="replace")


def _public_key_line(keygen_output: str) -> str:
    """The ``ssh-…`` public key line that ``dropbearkey`` prints (line 2 of its stdout)."""
    for line in keygen_output.splitlines():
        if line.startswith(("ssh-", "ecdsa-")):
            return line.strip()
    raise SshdSetupError(f"dropbearkey printed no public key line: {keygen_output.strip()[:300]!r}")


def _key_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")}


def _append_line(path: Path, line: str) -> None:
    existing = path.read_text() if path.exists() else ""
    sep = "" if not existing or existing.endswith("\n") else "\n"
    with open(path, "a") as fh:
        fh.write(f"{sep}{line}\n")


async def _ensure_authorized_keys(paths: ContainerPaths, tools: DropbearTools, tmp_dir: Path, timeout: float) -> None:
    ssh_dir = paths.work_dir / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ssh_dir.chmod(0o700)
    auth_keys = ssh_dir / "authorized_keys"
    if auth_keys.exists():
        auth_keys.chmod(0o600)
        return
    user_key = tmp_dir / "id_dropbear"
    out = await _run([*tools.keygen, "-t", "rsa", "-s", str(RSA_BITS), "-f", str(user_key)], timeout)
    public = _public_key_line(out)
    fd = os.open(auth_keys, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(public + "\n")
    auth_keys.chmod(0o600)
    id_container = paths.work_dir / "id_container"
    id_container.unlink(missing_ok=True)  # dropbearconvert refuses to overwrite
    await _run([*tools.convert, "dropbear", "openssh", str(user_key), str(id_container)], timeout)
    if id_container.exists():
        id_container.chmod(0o600)


async def _ensure_host_key(paths: ContainerPaths, tools: DropbearTools, tmp_dir: Path, timeout: float) -> Path:
    agent_key = paths.config_dir / "ssh" / "dropbear_rsa_host_key"
    if agent_key.is_file():
        return agent_key
    host_key = tmp_dir / "dropbear_rsa_host_key"
    await _run([*tools.keygen, "-t", "rsa", "-s", str(RSA_BITS), "-f", str(host_key)], timeout)
    if not host_key.is_file():
        raise SshdSetupError(f"dropbearkey did not create {host_key}")
    return host_key


# --------------------------------------------------------------------------- cluster SSH


def parse_cluster_replicas(value: str | None) -> dict[str, int]:
    """``role:count,…`` (default ``main:1``); malformed items are skipped with a warning."""
    replicas: dict[str, int] = {}
    for item in (value or "main:1").split(","):
        role, sep, count = item.strip().partition(":")
        role = role.strip()
        if not role:
            continue
        try:
            replicas[role] = int(count) if sep else 1
        except ValueError:
            log.warning("%s: ignoring malformed item %r", CLUSTER_REPLICAS_ENV, item)
    return replicas or {"main": 1}


def cluster_host_blocks(paths: ContainerPaths, env: Mapping[str, str]) -> list[list[str]]:
    """The ``Host`` blocks for the cluster's ``~/.ssh/config`` (each a list of lines)."""
    ssh_conf = paths.config_dir / "ssh"
    identity = f"IdentityFile {ssh_conf / 'id_cluster'}"
    mapping_file = ssh_conf / "port-mapping.json"
    blocks: list[list[str]] = []
    if mapping_file.is_file():
        try:
            mapping = json.loads(mapping_file.read_text())
        except (OSError, ValueError) as exc:
            raise SshdSetupError(f"{mapping_file}: unreadable port mapping: {exc}") from exc
        if not isinstance(mapping, dict):
            raise SshdSetupError(f"{mapping_file}: expected an object {{host: [hostname, port]}}")
        for host, target in mapping.items():
            if not (isinstance(target, (list, tuple)) and len(target) == 2):
                raise SshdSetupError(f"{mapping_file}: entry {host!r} must be [hostname, port]")
            hostname, port = target
            blocks.append(
                [f"Host {host}", f"  HostName {hostname}", f"  Port {int(port)}", "  StrictHostKeyChecking no", f"  {identity}"]
            )
    else:
        for role in parse_cluster_replicas(env.get(CLUSTER_REPLICAS_ENV)):
            blocks.append([f"Host {role}*", f"  Port {CLUSTER_SSH_PORT}", "  StrictHostKeyChecking no", f"  {identity}"])
    return blocks


def _split_blocks(text: str) -> list[list[str]]:
    """Split an ssh config into chunks: the preamble, then one chunk per ``Host``/``Match`` line."""
    chunks: list[list[str]] = [[]]
    for line in text.splitlines():
        keyword = line.strip().split(None, 1)[0].lower() if line.strip() else ""
        if keyword in ("host", "match"):
            chunks.append([])
        chunks[-1].append(line)
    return chunks


def _normalized(block: list[str]) -> list[str]:
    return [" ".join(line.split()) for line in block if line.strip()]


def _rstrip_blank(lines: list[str]) -> list[str]:
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    return lines[:end]


def merge_ssh_config(text: str, blocks: list[list[str]], identity_line: str) -> str:
    """*text* with *blocks* present exactly once.

    A block already present (same lines, whitespace-insensitive) is left alone; a
    block for the same ``Host`` pattern that uses the cluster identity (i.e. one we
    wrote earlier) but differs is replaced in place; anything else is appended.
    """
    chunks = _split_blocks(text)
    wanted_identity = " ".join(identity_line.split())
    appended: list[list[str]] = []
    for block in blocks:
        want = _normalized(block)
        same_host = [
            i for i, chunk in enumerate(chunks)
            if i > 0 and _normalized(chunk)[:1] == want[:1]
        ]
        if any(_normalized(chunks[i]) == want for i in same_host):
            continue
        ours = [i for i in same_host if wanted_identity in _normalized(chunks[i])]
        if ours:
            old = chunks[ours[0]]
            trailing = len(old) - len(_rstrip_blank(old))
            chunks[ours[0]] = list(block) + old[len(old) - trailing :]
        else:
            appended.append(list(block))
    lines = _rstrip_blank([line for chunk in chunks for line in chunk])
    for block in appended:
        if lines:
            lines.append("")
        lines.extend(block)
    return "\n".join(lines) + "\n" if lines else ""


def _ensure_cluster_ssh(paths: ContainerPaths, env: Mapping[str, str]) -> None:
    ssh_conf = paths.config_dir / "ssh"
    ssh_dir = paths.work_dir / ".ssh"
    if (ssh_conf / "id_cluster").is_file():
        config = ssh_dir / "config"
        old = config.read_text() if config.exists() else ""
        new = merge_ssh_config(old, cluster_host_blocks(paths, env), f"IdentityFile {ssh_conf / 'id_cluster'}")
        if new != old:
            config.write_text(new)
        config.chmod(0o600)
    cluster_pub = ssh_conf / "id_cluster.pub"
    if cluster_pub.is_file():
        auth_keys = ssh_dir / "authorized_keys"
        present = _key_lines(auth_keys.read_text()) if auth_keys.exists() else set()
        for key in sorted(_key_lines(cluster_pub.read_text()) - present):
            _append_line(auth_keys, key)
        auth_keys.chmod(0o600)


# --------------------------------------------------------------------------- entry point


async def prepare_sshd(
    paths: ContainerPaths,
    env: Mapping[str, str],
    tools: DropbearTools,
    *,
    tmp_dir: Path | None = None,
    timeout: float = HELPER_TIMEOUT,
) -> str:
    """Prepare keys and configs for dropbear (spec §6.8 init steps); return the host key path.

    *env* is the kernel's environment (read for ``BACKENDAI_CLUSTER_REPLICAS``);
    *tmp_dir* defaults to ``$KRUNNER_DROPBEAR_DIR`` or ``/tmp/dropbear`` and is
    recreated empty. Each helper run is bounded by *timeout* seconds. Raises
    :class:`SshdSetupError` with the failing step.
    """
    tmp = tmp_dir if tmp_dir is not None else dropbear_tmp_dir()
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700, parents=True)
        await _ensure_authorized_keys(paths, tools, tmp, timeout)
        host_key = await _ensure_host_key(paths, tools, tmp, timeout)
        _ensure_cluster_ssh(paths, env)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise SshdSetupError(f"preparing sshd failed{where}: {exc.strerror or exc}") from exc
    log.info("sshd prepared (host key %s)", host_key)
    return str(host_key)
