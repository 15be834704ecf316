"""The runner's view of its container: paths, /home/config files and the child environment.

The values agreed with the agent come from :mod:`krunner.contract`;
every path can be overridden through an environment variable so the runner can
also be exercised on a developer's host (unit tests), but inside a kernel
container the defaults are exactly the ones a Backend.AI agent sets up.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .contract import (
    CONFIG_DIR,
    INTRINSIC_PORT_KEYS,
    KRUNNER_PREFIX,
    SERVICE_DEFS_DIR,
    WORK_DIR,
)

log = logging.getLogger("krunner.container_env")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROMOTED_PATH_DIRS = ("/usr/local/cuda/bin", "/usr/local/nvidia/bin", "/home/linuxbrew/.linuxbrew/bin")


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name, default))


@dataclass(frozen=True)
class ContainerPaths:
    work_dir: Path = field(default_factory=lambda: _env_path("KRUNNER_WORK_DIR", WORK_DIR))
    config_dir: Path = field(default_factory=lambda: _env_path("KRUNNER_CONFIG_DIR", CONFIG_DIR))
    service_defs_dir: Path = field(
        default_factory=lambda: _env_path("KRUNNER_SERVICE_DEFS_DIR", SERVICE_DEFS_DIR)
    )
    input_socket: Path = field(default_factory=lambda: _env_path("BACKENDAI_INPUT_SOCKET", "/tmp/bai-user-input.sock"))

    @property
    def environ_txt(self) -> Path:
        return self.config_dir / "environ.txt"

    @property
    def intrinsic_ports_json(self) -> Path:
        return self.config_dir / "intrinsic-ports.json"

    @property
    def logs_dir(self) -> Path:
        return self.work_dir / ".logs"

    @property
    def bootstrap_script(self) -> Path:
        return self.work_dir / "bootstrap.sh"


def read_intrinsic_ports(path: Path) -> dict[str, int]:
    """Ports from ``intrinsic-ports.json`` merged over the defaults.

    Values may be ints or numeric strings; anything else is ignored with a warning.
    """
    ports = dict(INTRINSIC_PORT_KEYS)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return ports
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return ports
    if not isinstance(raw, dict):
        log.warning("ignoring %s: expected a JSON object", path)
        return ports
    for key, value in raw.items():
        if key not in ports:
            continue
        try:
            port = int(value)
        except (TypeError, ValueError):
            log.warning("ignoring %s[%r]=%r: not a port number", path.name, key, value)
            continue
        if not 0 < port < 65536:
            log.warning("ignoring %s[%r]=%r: out of range", path.name, key, value)
            continue
        ports[key] = port
    return ports


def parse_environ_txt(text: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines; a malformed line is skipped (upstream aborts the file)."""
    result: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum():
            log.warning("environ.txt:%d: skipping malformed line", lineno)
            continue
        result[key] = value
    return result


def _strip_path_entry(value: str, entry: str) -> str:
    return ":".join(p for p in value.split(":") if p and p.rstrip("/") != entry)


def build_child_env(paths: ContainerPaths, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every user process (batch, query, PTY, services) gets."""
    env = dict(os.environ if base is None else base)
    for internal in ("BACKEND_REEXECED", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONDONTWRITEBYTECODE"):
        env.pop(internal, None)
    env.update({"LANG": env.get("LANG") or "C.UTF-8", "HOME": str(paths.work_dir), "TERM": "xterm"})
    env.setdefault("PATH", DEFAULT_PATH)
    if "SHELL" not in env:
        env["SHELL"] = "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"
    try:
        env.update(parse_environ_txt(paths.environ_txt.read_text()))
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot read %s: %s", paths.environ_txt, exc)
    # User processes must not inherit the runner's private libraries (upstream RE-30).
    lib = f"{KRUNNER_PREFIX}/lib"
    if "LD_LIBRARY_PATH" in env:
        stripped = _strip_path_entry(env["LD_LIBRARY_PATH"], lib)
        if stripped:
            env["LD_LIBRARY_PATH"] = stripped
        else:
            del env["LD_LIBRARY_PATH"]
    path_entries = [p for p in env["PATH"].split(":") if p and not p.startswith(KRUNNER_PREFIX)]
    promoted = [d for d in PROMOTED_PATH_DIRS if Path(d).is_dir()] + [str(paths.work_dir / ".local/bin")]
    for entry in reversed(promoted):
        if entry in path_entries:
            path_entries.remove(entry)
        path_entries.insert(0, entry)
    env["PATH"] = ":".join(path_entries)
    return env


def task_log_path(paths: ContainerPaths, kernel_id: str | None) -> Path | None:
    """Where batch output is appended, or None when ``/home/work/.logs`` is absent."""
    if not paths.logs_dir.is_dir():
        return None
    try:
        hexid = uuid.UUID(kernel_id or "").hex
    except ValueError:
        log.warning("BACKENDAI_KERNEL_ID %r is not a UUID; task log disabled", kernel_id)
        return None
    return paths.logs_dir / "task" / hexid[0:2] / hexid[2:4] / f"{hexid[4:]}.log"
