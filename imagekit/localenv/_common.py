"""Shared by :mod:`imagekit.localenv` (this repository's test set-up): its error type and progress lines.

File locks come from :mod:`imagekit.locks`, the error type derives from the product's
:class:`imagekit.docker_jobs.DockerJobError` (so one ``except`` catches both).
"""

from __future__ import annotations

import sys

from imagekit.docker_jobs import DockerJobError
from imagekit.locks import file_lock

__all__ = ["LocalEnvError", "file_lock", "log"]


class LocalEnvError(DockerJobError):
    """The local environment (engine, base image, test images, volumes) could not be prepared."""


def log(message: str) -> None:
    """Print one progress line to stderr."""
    print(f"[localenv] {message}", file=sys.stderr, flush=True)
