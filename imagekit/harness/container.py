"""Start a kernel container with the settings the Backend.AI agent applies (spec 7.3–7.10)."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import DockerException, NotFound
from docker.models.containers import Container
from docker.types import Mount, Ulimit

from krunner.contract import (
    CONFIG_DIR,
    KERNEL_ID_LABEL,
    KRUNNER_PREFIX,
    PTY_IN_PORT,
    PTY_OUT_PORT,
    REPL_IN_PORT,
    REPL_OUT_PORT,
    WORK_DIR,
)

from .krunner_mount import ENTRYPOINT_TARGET, KrunnerMount

SCRATCH_ROOT = Path(os.environ.get("BAI_SCRATCH_ROOT", "/tmp/bai-scratch"))
KERNEL_PORTS: tuple[int, ...] = (REPL_IN_PORT, REPL_OUT_PORT, PTY_IN_PORT, PTY_OUT_PORT)
RUNNER_PYTHON = f"{KRUNNER_PREFIX}/bin/python"
PUBLISH_HOST = "127.0.0.1"
AGENT_NOFILE = 1048576


class KernelContainerError(RuntimeError):
    """Starting or inspecting a kernel container failed."""


def runner_command(runtime_type: str, runtime_path: str | None = None, *, debug: bool = False) -> list[str]:
    """The container ``Cmd``: ``python -s -m ai.backend.kernel [--debug] <type> [<path>]``."""
    cmd = [RUNNER_PYTHON, "-s", "-m", "ai.backend.kernel"]
    if debug:
        cmd.append("--debug")
    cmd.append(runtime_type)
    if runtime_path:
        cmd.append(runtime_path)
    return cmd


def short_image_name(image: str) -> str:
    """``bai-test/python:latest`` → ``python`` (safe for container names)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    last = last.split(":", 1)[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", last).strip("-.") or "image"


def format_environ_txt(env: Mapping[str, str]) -> str:
    """``KEY=VALUE`` lines as the agent writes ``environ.txt`` (no newlines allowed in values)."""
    lines = []
    for key, value in env.items():
        if "\n" in key or "=" in key or "\n" in str(value):
            raise ValueError(f"environment entry {key!r} cannot be written to environ.txt (newline or '=' in key)")
        lines.append(f"{key}={value}\n")
    return "".join(lines)


@dataclass
class KernelContainer:
    container: Container
    kernel_id: str
    scratch_dir: Path
    _stopped: bool = field(default=False, repr=False)

    # -- ports -----------------------------------------------------------------
    def host_port(self, container_port: int, timeout: float = 5.0) -> int:
        """The ephemeral ``127.0.0.1`` host port published for *container_port*/tcp."""
        key = f"{container_port}/tcp"
        deadline = time.monotonic() + timeout
        while True:
            bindings = ((self.container.attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(key)
            for b in bindings or ():
                if b.get("HostIp") in (PUBLISH_HOST, "") and b.get("HostPort"):
                    return int(b["HostPort"])
            if time.monotonic() >= deadline:
                raise KernelContainerError(
                    f"container {self.container.name}: port {key} is not published (bindings: {bindings!r})"
                )
            time.sleep(0.1)
            self.container.reload()

    @property
    def repl_in_port(self) -> int:
        return self.host_port(REPL_IN_PORT)

    @property
    def repl_out_port(self) -> int:
        return self.host_port(REPL_OUT_PORT)

    @property
    def pty_in_port(self) -> int:
        return self.host_port(PTY_IN_PORT)

    @property
    def pty_out_port(self) -> int:
        return self.host_port(PTY_OUT_PORT)

    # -- inspection ------------------------------------------------------------
    @property
    def work_dir(self) -> Path:
        return self.scratch_dir / "work"

    @property
    def config_dir(self) -> Path:
        return self.scratch_dir / "config"

    def status(self) -> str:
        self.container.reload()
        return str(self.container.status)

    def logs(self) -> str:
        try:
            return self.container.logs(stdout=True, stderr=True).decode(errors="replace")
        except NotFound:
            return ""

    def exec_run(self, cmd: str | Sequence[str], user: str | None = None) -> tuple[int, str]:
        """Run *cmd* in the container; return (exit code, combined output)."""
        result = self.container.exec_run(cmd if isinstance(cmd, str) else list(cmd), user=user or "")
        return int(result.exit_code if result.exit_code is not None else -1), result.output.decode(errors="replace")

    # -- teardown --------------------------------------------------------------
    def stop(self, timeout: int = 5) -> None:
        """Stop (SIGINT, then SIGKILL after *timeout*), remove the container and the scratch dir."""
        if self._stopped:
            return
        self._stopped = True
        try:
            try:
                self.container.stop(timeout=timeout)
            except NotFound:
                pass
            try:
                self.container.remove(force=True, v=False)
            except NotFound:
                pass
        finally:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def __enter__(self) -> KernelContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _prepare_scratch(
    kernel_id: str, uid: int, gid: int, environ: Mapping[str, str], intrinsic_ports: Mapping[str, object] | None
) -> Path:
    scratch = SCRATCH_ROOT / kernel_id
    work, config = scratch / "work", scratch / "config"
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(SCRATCH_ROOT, 0o755)
    scratch.mkdir(mode=0o755)
    work.mkdir(mode=0o755)
    config.mkdir(mode=0o755)
    if os.geteuid() == 0:
        os.chown(work, uid, gid)
    text = format_environ_txt(environ)
    for fname in ("environ.txt", "environ_base.txt"):
        (config / fname).write_text(text)
    if intrinsic_ports is not None:
        (config / "intrinsic-ports.json").write_text(json.dumps(dict(intrinsic_ports)))
    for f in config.iterdir():
        f.chmod(0o644)
    return scratch


def _ulimit_candidates() -> list[list[Ulimit]]:
    """The agent's ulimits first; then the same clamped to our own hard limits.

    Sandboxed engines (e.g. a dockerd without CAP_SYS_RESOURCE) cannot raise
    ``nofile``/``memlock`` above their own hard limits; runc then fails with
    "error setting rlimit".
    """
    agent = {"nofile": AGENT_NOFILE, "memlock": -1}
    clamped: dict[str, int] = {}
    for name, res in (("nofile", resource.RLIMIT_NOFILE), ("memlock", resource.RLIMIT_MEMLOCK)):
        hard = resource.getrlimit(res)[1]
        want = agent[name]
        clamped[name] = want if hard == resource.RLIM_INFINITY else (hard if want < 0 else min(want, hard))
    first = [Ulimit(name=n, soft=v, hard=v) for n, v in agent.items()]
    second = [Ulimit(name=n, soft=v, hard=v) for n, v in clamped.items()]
    return [first, second, []] if clamped != agent else [first, []]


_ulimit_fallback_index = 0  # remembers that the engine refused the agent's ulimits


def _remove_quietly(client: docker.DockerClient, ref: str | None) -> None:
    if not ref:
        return
    try:
        client.api.remove_container(ref, force=True)
    except DockerException:
        pass


def _create_and_start(client: docker.DockerClient, image: str, command: list[str], kwargs: dict) -> Container:
    global _ulimit_fallback_index
    candidates = _ulimit_candidates()
    while True:
        ulimits = candidates[min(_ulimit_fallback_index, len(candidates) - 1)]
        try:
            container = client.containers.create(image, command, ulimits=ulimits or None, **kwargs)
        except DockerException:
            raise
        except BaseException:  # interrupted mid-request (Ctrl-C, SIGTERM): the engine may have created it
            _remove_quietly(client, kwargs.get("name"))
            raise
        try:
            container.start()
            container.reload()
            return container
        except BaseException as e:  # also Ctrl-C/SIGTERM between create and start: never leave it behind
            _remove_quietly(client, container.id)
            if not isinstance(e, DockerException):
                raise
            if "rlimit" not in str(e) or _ulimit_fallback_index >= len(candidates) - 1:
                raise
            _ulimit_fallback_index += 1
            print(
                f"[harness] engine refused ulimits {[(u.name, u.soft) for u in ulimits]}; "
                f"retrying with {[(u.name, u.soft) for u in candidates[_ulimit_fallback_index]]}",
                file=sys.stderr,
            )


def start_kernel_container(
    image: str,
    runtime_type: str,
    runtime_path: str | None = None,
    *,
    krunner: KrunnerMount,
    env: dict[str, str] | None = None,
    uid: int = 1000,
    gid: int = 1000,
    extra_ports: Sequence[int] = (),
    environ_txt: dict[str, str] | None = None,
    intrinsic_ports: dict | None = None,
    debug: bool = False,
    name_prefix: str = "bai-test",
    client: docker.DockerClient | None = None,
    extra_mounts: Sequence[tuple[Path, str]] = (),
    resources: Mapping[str, int] | None = None,
    config_files: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> KernelContainer:
    """Create and start a kernel container like the agent does; return a :class:`KernelContainer`.

    ``env`` goes to the Docker ``Env`` and to ``environ.txt``; ``environ_txt`` entries
    are written to ``/home/config/environ.txt`` only (on top of the whole env).
    ``extra_mounts`` are ``(host_path, container_path)`` read-only binds (e.g. service-defs).
    ``resources`` are Docker limits (``nano_cpus``, ``mem_limit``); ``config_files`` extra
    files for ``/home/config`` (e.g. ``resource.txt``).  ``platform`` (``linux/arm64``) picks that
    platform's image; on another host it runs under binfmt emulation (qemu-user-static; the host sets it up).
    """
    if client is None:
        from imagekit.engine import connect

        client = connect()
    krunner.validate()
    kernel_id = str(uuid.uuid4())
    full_env: dict[str, str] = {
        "LOCAL_USER_ID": str(uid),
        "LOCAL_GROUP_ID": str(gid),
        "BACKENDAI_KERNEL_ID": kernel_id,
        "BACKENDAI_KERNEL_IMAGE": image,
        **(env or {}),
    }
    scratch = _prepare_scratch(kernel_id, uid, gid, {**full_env, **(environ_txt or {})}, intrinsic_ports)
    for fname, text in (config_files or {}).items():
        (scratch / "config" / fname).write_text(text)
        (scratch / "config" / fname).chmod(0o644)
    for dotfile in sorted(Path(krunner.home_files).iterdir()) if krunner.home_files else ():
        shutil.copy2(dotfile, scratch / "work" / dotfile.name)  # what the agent copies into a new home
        os.chown(scratch / "work" / dotfile.name, uid, gid)
    mounts = [
        Mount(WORK_DIR, str(scratch / "work"), type="bind"),
        Mount(CONFIG_DIR, str(scratch / "config"), type="bind", read_only=True),
        *krunner.docker_mounts(),
        *(Mount(target, str(source), type="bind", read_only=True) for source, target in extra_mounts),
    ]
    ports = {f"{p}/tcp": (PUBLISH_HOST, None) for p in (*KERNEL_PORTS, *extra_ports)}
    name = f"{name_prefix}.{short_image_name(image)}.{kernel_id[:8]}"
    create_kwargs = dict(
        entrypoint=[ENTRYPOINT_TARGET],
        name=name,
        labels={KERNEL_ID_LABEL: kernel_id, "ai.backend.imagekit.harness": "1"},
        environment=full_env,
        mounts=mounts,
        ports=ports,
        tty=True,
        stdin_open=True,
        stop_signal="SIGINT",
        init=True,
        working_dir=WORK_DIR,
        cap_add=["IPC_LOCK", "SYS_NICE"],
        **(resources or {}),
        **({"platform": platform} if platform else {}),
    )
    command = runner_command(runtime_type, runtime_path, debug=debug)
    try:
        container = _create_and_start(client, image, command, create_kwargs)
    except (DockerException, OSError) as e:
        shutil.rmtree(scratch, ignore_errors=True)
        raise KernelContainerError(f"could not start kernel container {name} from {image}: {e}") from e
    return KernelContainer(container=container, kernel_id=kernel_id, scratch_dir=scratch)
