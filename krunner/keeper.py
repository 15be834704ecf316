"""The runner's keeper: a root parent that resumes a stopped runner (issue 15).

The runner runs as the kernel user, the same uid as user code, so user code may signal it. Most
signals it survives (SIGINT/SIGTERM are shutdown requests the agent sends too); SIGSTOP it cannot
catch, and a stopped runner answers nothing, for ever. The entrypoint therefore forks before it
drops privileges: the child becomes the kernel user and execs the runner, the parent stays root
and keeps it:

* it waits for the runner with ``WUNTRACED``, so the kernel tells it at once when the runner is
  stopped (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU), and sends SIGCONT;
* it forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the runner (Docker's stop
  signal reaches the keeper first) and exits with the runner's exit status;
* it reaps every child it is handed (it may be the container's pid 1 when the agent runs
  without an init).

User code cannot stop or kill the keeper: it runs as root. It calls itself ``krunner-keeper``
(so ``pkill -f python`` does not even try) and imports nothing beyond the standard library.
"""

from __future__ import annotations

import os
import signal
import sys

PROCESS_TITLE = "krunner-keeper"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _log(message: str) -> None:
    try:
        sys.stderr.write(f"[krunner-keeper] {message}\n")
        sys.stderr.flush()
    except OSError:
        pass


def keep(pid: int) -> int:
    """Keep the runner *pid* (our child) running until it exits; return its exit status."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    try:
        from .proctitle import take_process_name

        take_process_name(PROCESS_TITLE)
    except Exception:  # noqa: BLE001 - a keeper without its name still keeps
        pass
    while True:
        try:
            child, status = os.waitpid(-1, os.WUNTRACED)
        except ChildProcessError:
            return 0
        if child != pid:
            continue  # an orphan we were handed as pid 1: reaped
        if os.WIFSTOPPED(status):
            _log(f"the runner was stopped by signal {os.WSTOPSIG(status)}; resuming it")
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            continue
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)
