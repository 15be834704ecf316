"""The test set-up's view of :mod:`imagekit.context_images`: the same builds, the engine ensured first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import docker

from imagekit import context_images
from imagekit.context_images import CONTEXT_HASH_LABEL, ImageBuildError, context_hash

from .engine import ensure_engine

__all__ = ["CONTEXT_HASH_LABEL", "ImageBuildError", "context_hash", "ensure_image"]


def ensure_image(
    context_dir: Path,
    tag: str,
    base_image: str,
    *,
    client: docker.DockerClient | None = None,
    buildargs: Mapping[str, str] | None = None,
) -> str:
    """:func:`imagekit.context_images.ensure_image`, starting the engine first when no *client* is given."""
    return context_images.ensure_image(context_dir, tag, base_image, client=client or ensure_engine(),
                                       buildargs=buildargs)
