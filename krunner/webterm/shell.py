"""Which command each terminal connection runs, and with which environment.

Upstream (ttyd in Backend.AI images) runs ``bash -c "export SHELL=/bin/bash;
/opt/kernel/tmux -2 attach"``.  tmux is optional here: when it exists the
command is ``tmux -2 new-session -A -s main`` (sessions survive reconnects),
otherwise the first login shell that exists.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

LOGIN_SHELLS: tuple[str, ...] = ("/bin/zsh", "/bin/bash", "/bin/ash", "/bin/sh")
KERNEL_TMUX = "/opt/kernel/tmux"
TMUX_SESSION = "main"
DEFAULT_HOME = "/home/work"
TERM = "xterm-256color"


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def login_shell() -> str:
    """The first of zsh, bash, ash that exists, else ``/bin/sh``."""
    return next((s for s in LOGIN_SHELLS if _executable(s)), "/bin/sh")


def find_tmux() -> str | None:
    if _executable(KERNEL_TMUX):
        return KERNEL_TMUX
    return shutil.which("tmux")


def shell_command(shell: str | None = None) -> list[str]:
    """argv for a new connection: *shell* if given, else tmux if present, else the login shell."""
    if shell:
        return [shell]
    tmux = find_tmux()
    if tmux:
        return [tmux, "-2", "new-session", "-A", "-s", TMUX_SESSION]
    return [login_shell()]


def shell_environment(base: Mapping[str, str], shell: str | None = None) -> dict[str, str]:
    """The server's environment plus ``TERM``, ``SHELL`` and a default ``HOME``."""
    env = dict(base)
    env["TERM"] = TERM
    env["SHELL"] = shell or login_shell()
    env.setdefault("HOME", DEFAULT_HOME)
    for key in ("TMUX", "TMUX_PANE"):  # a server started inside tmux must not look nested
        env.pop(key, None)
    return env
