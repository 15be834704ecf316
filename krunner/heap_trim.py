"""Giving the heap back to the system after large messages (glibc's ``malloc_trim``).

A 10 MB ``code`` payload is freed once its run ends, but glibc keeps the pages: its mmap
threshold grows with every large block it frees, later blocks come from the heap, and the heap
is only returned from its top. After a burst of large messages the runner would stay hundreds of
MB above idle for good. :class:`HeapTrimmer` asks glibc to return free pages shortly after a
large message is done with (debounced, so a burst costs one trim). Without glibc (or ctypes)
it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger("krunner.heap")

#: payloads at least this large schedule a trim once they are freed
LARGE_PAYLOAD = 1 << 20
#: the trim runs this long after the last large message was done with
TRIM_DELAY = 0.5
#: this many messages of any size also schedule a trim (a burst of small ones fragments the heap too)
BURST_MESSAGES = 256


def _load_malloc_trim() -> Callable[[int], int] | None:
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
        return trim
    return None


class HeapTrimmer:
    def __init__(self) -> None:
        self._trim = _load_malloc_trim()
        self._handle: asyncio.TimerHandle | None = None
        self._messages = 0
        self.trims = 0

    def count_message(self) -> None:
        """One more message handled; every :data:`BURST_MESSAGES` a trim is scheduled (it runs once the
        burst pauses, the timer being pushed back while messages keep coming)."""
        self._messages += 1
        if self._messages >= BURST_MESSAGES:
            self._messages = 0
            self.soon()

    def soon(self) -> None:
        """Trim :data:`TRIM_DELAY` s from now (a trim already scheduled is pushed back)."""
        if self._trim is None:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = asyncio.get_running_loop().call_later(TRIM_DELAY, self._run)

    def _run(self) -> None:
        self._handle = None
        if self._trim is not None:
            self._trim(0)
            self.trims += 1
            log.debug("heap trimmed after large messages (%d so far)", self.trims)
