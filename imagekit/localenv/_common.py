"""Shared helpers for :mod:`imagekit.localenv`: progress logging, errors, file locks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

LOCK_DIR = Path(os.environ.get("BAI_LOCALENV_LOCK_DIR", "/tmp"))


class LocalEnvError(RuntimeError):
    """The local environment (engine, images, volumes) could not be prepared."""


def log(message: str) -> None:
    """Print one progress line to stderr."""
    print(f"[localenv] {message}", file=sys.stderr, flush=True)


def _lock_path(name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "default"
    return LOCK_DIR / f"bai-localenv.{safe}.lock"


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``/tmp/bai-localenv.<name>.lock``.

    Different resources use different lock names, so nested ``ensure_*`` calls in
    one process never deadlock on each other (flock is per open file description).
    """
    path = _lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for lock {path} (another prepare is running)…")
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
