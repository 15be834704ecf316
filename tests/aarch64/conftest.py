"""aarch64 fixtures: arm64 emulation and the arm64 test images (set up once), the aarch64 bundle.

The set-up (:mod:`imagekit.localenv.emulation`) enables QEMU user-mode emulation on the host,
idempotently; when the host cannot (no binfmt_misc, not root) the tests fail with its reason,
they never skip.  Every test here is marked ``aarch64`` and ``docker`` and bounded by
:data:`TIMEOUT_SECONDS` (the first one may cross-build the bundle and debootstrap an arm64 base).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagekit.harness.krunner_mount import KrunnerMount
from tests.directory_fixtures import mark_directory

#: per-test bound, session fixtures included: a cold run cross-builds the aarch64 bundle (~4 min on
#: a loaded 2-core host) and debootstraps the arm64 base under emulation (~4 min)
TIMEOUT_SECONDS = 1500


def pytest_collection_modifyitems(config, items):
    mark_directory(items, Path(__file__).parent, ("aarch64", "docker"), TIMEOUT_SECONDS)


@pytest.fixture(scope="session")
def arm64_images(localenv) -> dict[str, str]:
    """Emulation enabled; ``{"debian": <arm64 minbase tag>, "busybox": <arm64 busybox-only tag>}``."""
    from imagekit.localenv.emulation import ensure_arm64

    try:
        return ensure_arm64()
    except Exception as exc:  # noqa: BLE001 - an environment failure fails the tests loudly, never skips
        pytest.fail(f"cannot prepare arm64 emulation: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def aarch64_bundle(localenv, arm64_images) -> KrunnerMount:
    """The aarch64 bundle cross-built (under the emulation arm64_images enabled: the build runs its checks
    under it), its volume installed, the working copy's krunner laid over it."""
    from imagekit.localenv.krunner_mounts import bundle_mount

    try:
        return bundle_mount(overlay_checkout=True, arch="aarch64")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"cannot build and install the aarch64 krunner bundle: {exc}", pytrace=False)
