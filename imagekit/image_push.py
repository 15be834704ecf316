"""Push tagged images through the Docker engine (``build --push``), with per-layer progress.

Credentials are the engine client's own: docker-py reads the Docker config (``auths``,
``credsStore``/``credHelpers``) exactly as ``docker push`` does. Errors the engine reports in the
push stream (unreachable registry, denied, unknown CA…) become :class:`PushError` carrying the
registry's message (exit 2).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from docker.errors import DockerException
from docker.utils import parse_repository_tag
from pydantic import BaseModel, ConfigDict

from .console import progress
from .errors import EnvironmentProblem, UsageError

#: on a TTY, at most one kept "Pushing" line per layer this often (a live line: LIVE_PROGRESS_SECONDS)
TTY_PROGRESS_SECONDS = 2.0
LIVE_PROGRESS_SECONDS = 0.25

Log = Callable[[str], None]


class PushError(EnvironmentProblem):
    """The engine could not push a tag (registry unreachable, auth denied, …)."""


class PushedTag(BaseModel):
    """One tag as the registry now has it."""

    model_config = ConfigDict(frozen=True)

    reference: str  # as given with -t, e.g. 127.0.0.1:5000/x/y:1
    repository: str  # the part before the tag: 127.0.0.1:5000/x/y
    tag: str
    digest: str  # the manifest digest the registry stored
    size: int | None = None


def split_tag(reference: str) -> tuple[str, str]:
    """``host:5000/x/y:1`` → (``host:5000/x/y``, ``1``); no tag means ``latest``; digests are refused."""
    if "@" in reference:
        raise UsageError(f"--push: {reference!r} has a digest; push needs a tag (-t REPO:TAG)")
    repository, tag = parse_repository_tag(reference)
    return repository, tag or "latest"


def _human(size: int | None) -> str:
    if not size:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f" ({value:.0f} {unit})" if unit == "B" else f" ({value:.1f} {unit})"
        value /= 1000
    return ""


class _LayerProgress:
    """Turns the engine's push stream into lines: one per layer and state ("pushing", "pushed",
    "already exists", …) through *log*; on a TTY also the running "[==> ] x/y" through *update* (a
    live line, e.g. :meth:`imagekit.console.Task.update`) or, without one, as kept lines at most
    every :data:`TTY_PROGRESS_SECONDS` per layer. Not on a TTY: state lines only."""

    def __init__(self, name: str, log: Log, tty: bool, clock: Callable[[], float] = time.monotonic,
                 update: Log | None = None):
        self.name, self.log, self.tty, self.clock = name, log, tty, clock
        self.update = update or log
        self.every = LIVE_PROGRESS_SECONDS if update is not None else TTY_PROGRESS_SECONDS
        self.shown: dict[str, str] = {}  # layer -> last state shown
        self.pushing_at: dict[str, float] = {}
        self.sizes: dict[str, int] = {}

    def feed(self, line: dict[str, Any]) -> None:
        layer, status = line.get("id"), line.get("status") or ""
        if not layer or status in ("Preparing", "Waiting"):
            return
        total = (line.get("progressDetail") or {}).get("total")
        if total:
            self.sizes[layer] = total
        if status == "Pushing":
            now = self.clock()
            first = layer not in self.pushing_at
            if first:
                self.pushing_at[layer] = now
                self.log(f"push {self.name}: layer {layer} pushing{_human(total)}")
            elif self.tty and now - self.pushing_at[layer] >= self.every and line.get("progress"):
                self.pushing_at[layer] = now
                self.update(f"push {self.name}: layer {layer} {line['progress']}")
            return
        if self.shown.get(layer) == status:
            return
        self.shown[layer] = status
        suffix = _human(self.sizes.get(layer)) if status == "Pushed" else ""
        state = status.removeprefix("Layer ")  # "Layer already exists"
        self.log(f"push {self.name}: layer {layer} {state[0].lower() + state[1:]}{suffix}")


def _error_message(line: dict[str, Any]) -> str:
    detail = line.get("errorDetail") or {}
    return str(detail.get("message") or line.get("error") or line).strip()


def push_tag(client, reference: str, *, log: Log = progress, update: Log | None = None,
             tty: bool | None = None) -> PushedTag:
    """Push one local tag through the engine; raises :class:`PushError` with the registry's message.

    *log* gets the kept lines (one per layer and state), *update* the running figures on a TTY."""
    repository, tag = split_tag(reference)
    tty = sys.stderr.isatty() if tty is None else tty
    log(f"push {reference}: pushing through the engine…")
    layers = _LayerProgress(reference, log, tty, update=update)
    digest: str | None = None
    size: int | None = None
    try:
        for line in client.images.push(repository, tag, stream=True, decode=True):
            if "error" in line or "errorDetail" in line:
                raise PushError(f"pushing {reference} failed: {_error_message(line)}")
            aux = line.get("aux") or {}
            if aux.get("Digest"):
                digest, size = aux["Digest"], aux.get("Size")
                continue
            layers.feed(line)
    except DockerException as exc:
        explanation = getattr(exc, "explanation", None) or str(exc)
        raise PushError(f"pushing {reference} failed: {explanation}") from exc
    except OSError as exc:  # the engine connection itself
        raise PushError(f"pushing {reference} failed: {exc}") from exc
    if digest is None:
        raise PushError(f"pushing {reference}: the engine reported no manifest digest (was it pushed?)")
    log(f"push {reference}: manifest {digest}")
    return PushedTag(reference=reference, repository=repository, tag=tag, digest=digest, size=size)
