"""Giving freed memory back after a huge cell (stdlib only; the image's Python 3.8+).

A multi-megabyte cell source is freed when its run ends, but glibc keeps the pages (its mmap
threshold grows with every large block freed, so later blocks come from the heap, which is only
returned from its top). ``malloc_trim(0)`` returns them. Without glibc or ctypes it does nothing.
The runner does the same for its own heap (``krunner/heap_trim.py``).
"""

from __future__ import annotations

#: a cell source at least this long is followed by a trim once its run is over
LARGE_SOURCE = 1 << 20

_trim = None
_loaded = False


def give_back_free_memory() -> None:
    global _trim, _loaded
    if not _loaded:
        _loaded = True
        try:
            import ctypes

            _trim = ctypes.CDLL(None).malloc_trim
            _trim.argtypes = [ctypes.c_size_t]
        except Exception:  # noqa: BLE001 - not glibc: nothing to give back this way
            _trim = None
    if _trim is not None:
        try:
            _trim(0)
        except Exception:  # noqa: BLE001
            pass
