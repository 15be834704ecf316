"""The user's stdout/stderr: block-buffered text streams over fds 1/2 that count their bytes.

The counts let every event carry the output position it follows (see ``channel``);
``Flusher`` pushes buffered output out when a running cell goes quiet.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time

OUTPUT_BUFFER_SIZE = 64 * 1024
FLUSH_INTERVAL = 0.01


class _ByteCounter:
    """Bytes written to one output fd through sys.stdout/sys.stderr (survives stream repair)."""

    def __init__(self) -> None:
        self.count = 0


class _CountingRaw(io.RawIOBase):
    """A raw fd writer that counts bytes, so events can carry output positions.

    The runner uses the positions to put each event exactly after the output
    that preceded it, although output and events travel on different pipes.
    """

    def __init__(self, fd: int, counter: _ByteCounter) -> None:
        super().__init__()
        self._fd = fd
        self._counter = counter

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, data) -> int:  # type: ignore[override]
        written = os.write(self._fd, data)
        self._counter.count += written
        return written


def _make_text_stream(fd: int, errors: str, counter: _ByteCounter | None = None) -> io.TextIOWrapper:
    raw = _CountingRaw(fd, counter if counter is not None else _ByteCounter())
    buffered = io.BufferedWriter(raw, buffer_size=OUTPUT_BUFFER_SIZE)
    return io.TextIOWrapper(
        buffered, encoding="utf-8", errors=errors, line_buffering=False, write_through=False
    )


class OutputStreams:
    """The user's stdout/stderr as block-buffered text streams over fds 1/2."""

    def __init__(self) -> None:
        self.out_count = _ByteCounter()
        self.err_count = _ByteCounter()
        self.stdout = _make_text_stream(1, "surrogateescape", self.out_count)
        self.stderr = _make_text_stream(2, "backslashreplace", self.err_count)

    def positions(self) -> dict:
        """Bytes written so far to stdout ("o") and stderr ("e") through the streams."""
        return {"o": self.out_count.count, "e": self.err_count.count}

    def install(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            _quiet_flush(stream)
        sys.stdout = sys.__stdout__ = self.stdout
        sys.stderr = sys.__stderr__ = self.stderr

    def repair(self) -> None:
        """Recreate streams that user code closed."""
        if self.stdout.closed:
            self.stdout = _make_text_stream(1, "surrogateescape", self.out_count)
            sys.stdout = sys.__stdout__ = self.stdout
        if self.stderr.closed:
            self.stderr = _make_text_stream(2, "backslashreplace", self.err_count)
            sys.stderr = sys.__stderr__ = self.stderr

    def flush(self) -> None:
        _quiet_flush(self.stdout)
        _quiet_flush(self.stderr)


def _quiet_flush(stream: object) -> None:
    try:
        stream.flush()  # type: ignore[attr-defined]
    except Exception:
        pass


class Flusher:
    """Daemon thread flushing the output streams periodically while active."""

    def __init__(self, streams: OutputStreams, interval: float = FLUSH_INTERVAL) -> None:
        self._streams = streams
        self._interval = interval
        self._active = threading.Event()
        self._thread = threading.Thread(target=self._run, name="krunner-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def activate(self) -> None:
        self._active.set()

    def deactivate(self) -> None:
        self._active.clear()

    def _run(self) -> None:
        # Flush only when output stalled: while a cell prints a lot, the buffers
        # flush themselves whenever they fill, and flushing from this thread too
        # would only fight the main thread for the GIL and the buffer locks.
        last = None
        while True:
            self._active.wait()
            time.sleep(self._interval)
            if not self._active.is_set():
                continue
            now = self._streams.positions()
            if now == last:
                self._streams.flush()
                now = self._streams.positions()
            last = now
