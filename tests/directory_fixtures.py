"""Helpers the test directories share: marking a directory's tests, and a local registry for a fixture."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from imagekit.localenv.registry import LocalRegistry, ensure_registry, stop_registry


def mark_directory(items, here: Path, markers: tuple[str, ...], timeout: int) -> None:
    """Give every collected test below *here* the *markers*, and *timeout* unless it sets its own."""
    for item in items:
        if here in Path(item.path).parents:
            for name in markers:
                item.add_marker(getattr(pytest.mark, name))
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(timeout))


@contextmanager
def local_registry(kind: str, directory: Path) -> Iterator[LocalRegistry]:
    """A local registry of *kind* in *directory*, stopped afterwards; an environment failure fails the
    test loudly, never skips it."""
    try:
        registry = ensure_registry(kind, directory)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"cannot start the local {kind} registry: {exc}", pytrace=False)
    try:
        yield registry
    finally:
        stop_registry(registry)
