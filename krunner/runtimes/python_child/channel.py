"""The control channel (fd 3): events to the runner, each after the output written before it."""

from __future__ import annotations

import os
import threading

from .framing import pack_frame
from .interrupts import InterruptGuard
from .streams import OutputStreams


class ControlChannel:
    """Writes events to fd 3, flushing the user's output first."""

    def __init__(self, fd: int, streams: OutputStreams, guard: InterruptGuard) -> None:
        self._fd = fd
        self._streams = streams
        self._guard = guard
        self._lock = threading.Lock()
        self._broken = False

    def send(self, event: dict) -> None:
        entered = self._guard.enter_critical()
        try:
            self._streams.flush()
            with self._lock:
                frame = pack_frame(dict(event, **self._streams.positions()))
                self._write_all(frame)
        finally:
            self._guard.leave_critical(entered)

    def _write_all(self, data: bytes) -> None:
        if self._broken:
            return
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # The parent is gone; the command channel will report EOF soon.
            self._broken = True
