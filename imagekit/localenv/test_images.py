"""Registry of the kernel images used by the test-suite (``tests/images/<name>``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import docker

from ._common import LocalEnvError
from .base_image import ensure_base_image
from .checkout import TEST_IMAGES_DIR
from .engine import ensure_engine
from .images import ensure_image


@dataclass(frozen=True)
class KernelTestImage:
    name: str
    runtime_type: str
    runtime_path: str

    @property
    def context_dir(self) -> Path:
        return TEST_IMAGES_DIR / self.name

    @property
    def tag(self) -> str:
        return f"bai-test/{self.name}:latest"


TEST_IMAGES: dict[str, KernelTestImage] = {
    img.name: img
    for img in (
        KernelTestImage("python", "python", "/usr/bin/python3"),
        KernelTestImage("gcc", "c", "/usr/bin/gcc"),
        KernelTestImage("nodejs", "nodejs", "/usr/bin/node"),
    )
}
#: images only the krunner-bundle tests use (tests/docker/test_bundle.py); built on request, not by default
BUNDLE_TEST_IMAGES: dict[str, KernelTestImage] = {
    img.name: img
    for img in (
        KernelTestImage("busybox", "shell", "/bin/sh"),
        KernelTestImage("nonroot", "shell", "/bin/bash"),
    )
}


def get_test_image(name: str) -> KernelTestImage:
    known = {**TEST_IMAGES, **BUNDLE_TEST_IMAGES}
    try:
        return known[name]
    except KeyError:
        raise LocalEnvError(f"unknown test image {name!r} (known: {', '.join(known)})") from None


def ensure_test_images(
    names: Iterable[str] | None = None,
    *,
    client: docker.DockerClient | None = None,
    base_image: str | None = None,
) -> dict[str, str]:
    """Build (if needed) the named test images (default: all); return ``{name: tag}``."""
    client = client or ensure_engine()
    selected = [get_test_image(n) for n in (TEST_IMAGES if names is None else names)]
    base = base_image or ensure_base_image(client=client)
    return {img.name: ensure_image(img.context_dir, img.tag, base, client=client) for img in selected}
