"""Registry of the kernel images used by the test-suite (``tests/images/<name>``)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import docker

from ._common import LocalEnvError
from .base_image import ensure_base_image
from .engine import ensure_engine
from .images import ensure_image
from .krunner_dev import host_ca_bundle

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_IMAGES_DIR = REPO_ROOT / "tests" / "images"
SERVICE_DEFS_DIR = REPO_ROOT / "service-defs"
# Name of the host CA bundle in a build context (for a throw-away pip stage only).
HOST_CA_CONTEXT_NAME = "bai-host-ca.pem"


@dataclass(frozen=True)
class KernelTestImage:
    name: str
    runtime_type: str
    runtime_path: str
    # Repository files copied into the build context (hashed): ((name in context, path under REPO_ROOT), …).
    shared_files: tuple[tuple[str, str], ...] = ()
    # Put the host CA bundle at HOST_CA_CONTEXT_NAME (not hashed; an empty file if the host has none).
    needs_host_ca: bool = False

    @property
    def context_dir(self) -> Path:
        return TEST_IMAGES_DIR / self.name

    def extra_files(self) -> dict[str, Path]:
        return {dest: REPO_ROOT / src for dest, src in self.shared_files}

    @property
    def tag(self) -> str:
        return f"bai-test/{self.name}:latest"


TEST_IMAGES: dict[str, KernelTestImage] = {
    img.name: img
    for img in (
        KernelTestImage("python", "python", "/usr/bin/python3"),
        KernelTestImage("gcc", "c", "/usr/bin/gcc"),
        KernelTestImage("nodejs", "nodejs", "/usr/bin/node"),
        KernelTestImage(
            "services",
            "python",
            "/opt/py/bin/python",
            shared_files=(
                ("service-defs/jupyterlab.json", "service-defs/jupyterlab.json"),
                ("service-defs/tensorboard.json", "service-defs/tensorboard.json"),
            ),
            needs_host_ca=True,
        ),
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
    with tempfile.TemporaryDirectory(prefix="bai-test-images.") as tmp:
        ca = host_ca_bundle()
        if ca is None:
            ca = Path(tmp) / "empty-ca.pem"
            ca.write_bytes(b"")
        return {
            img.name: ensure_image(
                img.context_dir,
                img.tag,
                base,
                client=client,
                extra_files=img.extra_files(),
                unhashed_files={HOST_CA_CONTEXT_NAME: ca} if img.needs_host_ca else None,
            )
            for img in selected
        }
