"""Cross-process file locks for work on shared resources (an image tag, a volume, an output dir).

``file_lock("volume-x")`` holds an exclusive ``flock`` on ``$BAI_IMAGEKIT_LOCK_DIR/bai-imagekit.volume-x.lock``
(``/tmp`` by default), so two ``bai-imagekit`` processes (or parallel test workers) never build or
fill the same thing at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .console import progress

LOCK_DIR_ENV = "BAI_IMAGEKIT_LOCK_DIR"


def lock_path(name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "default"
    return Path(os.environ.get(LOCK_DIR_ENV) or "/tmp") / f"bai-imagekit.{safe}.lock"


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock named *name* for the duration of the ``with`` block.

    Different resources use different names, so nested locks in one process never deadlock on each
    other (flock is per open file description); the same name held elsewhere makes this wait.
    """
    path = lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for lock {path} (another bai-imagekit process holds it)…")
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
