"""Fixtures shared by the docker and agent tests: the local environment and the reference images."""

from __future__ import annotations

import os

import pytest

from imagekit.localenv.checkout import product_env

# `bai-imagekit` (in-process and in subprocesses) uses the test set-up's bundle directory and the
# local debootstrap base image; nothing is pulled, the bundle cache in .cache/krunner-bundle is reused
for _key, _value in product_env().items():
    os.environ.setdefault(_key, _value)

#: built for every docker test session; heavier images are prepared by the fixtures that need them
CORE_IMAGES = ("python", "gcc", "nodejs")


@pytest.fixture(scope="session")
def localenv():
    """Engine, base image, test images and the dev krunner volume (built once, cached by tag).

    If the engine cannot be started this fails the tests loudly; it never skips.
    """
    from imagekit.localenv.prepare import prepare

    try:
        prepare(images=CORE_IMAGES)
    except Exception as exc:  # noqa: BLE001 - report any environment failure as a test error
        pytest.fail(f"cannot prepare the local Docker environment: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def krunner_bundle(localenv):
    """``bai-imagekit krunner build`` + ``install`` done (in .cache/krunner-bundle, cached by inputs), so
    ``bai-imagekit test``/``run`` find the bundle and its volume; the :class:`InstalledBundle`."""
    from imagekit.localenv.krunner_mounts import ensure_krunner_volume

    try:
        return ensure_krunner_volume()
    except Exception as exc:  # noqa: BLE001 - report any environment failure as a test error
        pytest.fail(f"cannot build and install the krunner bundle: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def reference_image(localenv, krunner_bundle):
    """``reference_image("python")`` → the tag of ``images/python`` built with ``bai-imagekit build``
    (once per session; Docker's layer cache makes rebuilds cheap). Steps that download from PyPI get
    the host CA bundle as a BuildKit secret. The krunner bundle is installed too: the images built
    here are smoke-tested with ``bai-imagekit test``."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from imagekit.localenv.base_image import ensure_base_image

    repo = Path(__file__).resolve().parents[1]
    built: dict[str, str] = {}
    ca = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"

    def build(name: str) -> str:
        if name not in built:
            tag = f"bai-ref/{name}:latest"
            argv = [sys.executable, "-m", "imagekit.cli", "build", f"images/{name}", "-t", tag,
                    "--build-arg", f"BASE_IMAGE={ensure_base_image()}"]
            if name in PYPI_IMAGES and os.path.isfile(ca):
                argv += ["--ca-bundle", ca]
            out = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=1500)
            if out.returncode != 0:
                pytest.fail(f"building images/{name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}", pytrace=False)
            built[name] = tag
        return built[name]

    return build


#: reference images whose Dockerfile installs from PyPI (they need the host CA behind the proxy)
PYPI_IMAGES = {"python"}
