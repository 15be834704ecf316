"""SIGINT in the REPL child: KeyboardInterrupt inside user code only, never mid-frame."""

from __future__ import annotations

import signal
import threading


class InterruptGuard:
    """Decides what SIGINT does: raise KeyboardInterrupt only in user code.

    Outside user code (idle, REPL bookkeeping) SIGINT is ignored.  While the
    main thread writes a control frame, the interrupt is deferred until the
    frame is complete so the channel never carries a truncated frame.
    """

    def __init__(self) -> None:
        self.interruptible = False
        self._critical_depth = 0
        self._deferred = False

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: object) -> None:
        if not self.interruptible:
            return
        if self._critical_depth > 0:
            self._deferred = True
            return
        raise KeyboardInterrupt

    def user_code(self) -> _UserCodeScope:
        return _UserCodeScope(self)

    def enter_critical(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        self._critical_depth += 1
        return True

    def leave_critical(self, entered: bool) -> None:
        if not entered:
            return
        self._critical_depth -= 1
        if self._critical_depth == 0 and self._deferred:
            self._deferred = False
            if self.interruptible:
                raise KeyboardInterrupt


class _UserCodeScope:
    def __init__(self, guard: InterruptGuard) -> None:
        self._guard = guard

    def __enter__(self) -> None:
        self._guard.interruptible = True

    def __exit__(self, *exc_info: object) -> bool:
        self._guard.interruptible = False
        return False



def block_sigint() -> object:
    """Block SIGINT in the calling thread (threads started now inherit it); returns the old mask."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def restore_sigmask(previous: object) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # type: ignore[arg-type]
