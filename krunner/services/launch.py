"""What it takes to spawn one service process (shared by definitions and intrinsic services)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

#: below the agent's 35 s wait for a start-service reply (upstream #13684)
DEFAULT_LAUNCH_TIMEOUT = 30.0


@dataclass
class LaunchSpec:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # on top of the runner's child environment
    cwd: str | None = None  # default: the working directory (/home/work)
    launch_timeout: float = DEFAULT_LAUNCH_TIMEOUT


def python_module_argv(module: str, *args: str) -> list[str]:
    """argv running a krunner module with the runner's own interpreter."""
    return [sys.executable, "-s", "-m", module, *args]
