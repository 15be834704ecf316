"""The runner's process name, ``bai-krunner``.

User code in the kernel often runs ``pkill -f python`` (or ``killall python``) to clean up
its own programs. The runner is a Python process too; under its real command line it would be
killed with them and the container would end. Like upstream's runner (lablup/backend.ai#6085),
krunner renames itself at start-up: its ``/proc/<pid>/cmdline`` and ``comm`` become
``bai-krunner``, which no such pattern matches. The user's processes still die as asked.

The ``setproctitle`` package cannot do this in the krunner bundle: there CPython is started by
an explicit dynamic loader (``ld.so --argv0 … python3.11-real …``), whose ``argv`` is not the
contiguous block ``setproctitle`` looks for, so it silently does nothing. The kernel tells where
the block is (``arg_start``/``arg_end`` in ``/proc/self/stat``, Linux ≥ 3.5); the title is written
there, NUL-padded, and ``comm`` is set with ``prctl(PR_SET_NAME)``. CPython keeps its own copies of
the arguments, so nothing in the runner reads the overwritten strings.
"""

from __future__ import annotations

import ctypes
import logging

PROCESS_TITLE = "bai-krunner"
PR_SET_NAME = 15
#: 1-based field numbers in /proc/<pid>/stat (proc(5))
ARG_START_FIELD, ARG_END_FIELD = 48, 49

log = logging.getLogger("krunner")


def _argv_area() -> tuple[int, int]:
    with open("/proc/self/stat", "rb") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(b")") + 2:].split()  # fields[0] is field 3 (the state)
    return int(fields[ARG_START_FIELD - 3]), int(fields[ARG_END_FIELD - 3])


def take_process_name(title: str = PROCESS_TITLE) -> bool:
    """Rename this process to *title* (cmdline and comm); False (with a warning) if it cannot."""
    try:
        start, end = _argv_area()
        size = end - start
        if size <= len(title):
            raise ValueError(f"the argument area is only {size} bytes")
        data = title.encode()
        ctypes.memmove(start, data + b"\0" * (size - len(data)), size)
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, data[:15], 0, 0, 0)
    except (OSError, ValueError, IndexError, AttributeError) as exc:
        log.warning("cannot rename the runner process (%s): `pkill -f python` in user code would stop it", exc)
        return False
    return True
