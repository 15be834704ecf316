"""The krunner mounts this repository's tests use, and the bundle they are made from.

* :func:`ensure_krunner_bundle` – ``bai-imagekit krunner build`` + ``install`` in-process, with
  the test set-up's inputs: the debootstrap base image, the checkout's web terminal assets cache,
  the host CA bundle, and the output directory ``.cache/krunner-bundle`` (which
  :func:`imagekit.localenv.checkout.product_env` also hands to ``bai-imagekit`` subprocesses);
* :func:`bundle_mount` – that bundle as a :class:`KrunnerMount`, optionally with the working copy's
  ``krunner/`` and ``ai/`` laid over the bundle's copies (runner edits apply without a rebuild);
* :func:`dev_checkout_mount` – the development volume (a venv that needs the image's
  ``python3.11``) plus the working copy's packages and entrypoint script.

Memoized per process.
"""

from __future__ import annotations

import compileall
import sys
from pathlib import Path

import docker

from imagekit.bundle import ARCH, SITE_PACKAGES
from imagekit.bundle.bundle_build import BundleBuild, build_bundle
from imagekit.bundle.installed import InstalledBundle, find_installed_bundle
from imagekit.bundle.installed import bundle_mount as installed_mount
from imagekit.bundle.volume import install_volume
from imagekit.harness.krunner_mount import KrunnerMount

from .base_image import ensure_base_image
from .checkout import BUNDLE_DIR, REPO_ROOT
from .engine import ensure_engine
from .krunner_dev import DEV_SITE_PACKAGES, ensure_dev_krunner_volume, host_ca_bundle
from .webterm_assets import ensure_webterm_assets

_installed: dict[str, InstalledBundle] = {}


def _precompile(*packages: Path) -> None:
    """Write the working copy's bytecode once on the host.

    The packages are mounted read-only, so the runner could never cache its own bytecode and would
    recompile every module on every container start.  Both runner interpreters (the dev volume's and
    the bundle's) are Debian 12's CPython 3.11, which reads the ``cpython-311`` files a host 3.11 writes.
    """
    if sys.version_info[:2] != (3, 11):
        return
    for package in packages:
        compileall.compile_dir(str(package), quiet=2, force=False)


def ensure_krunner_bundle(
    client: docker.DockerClient | None = None, *, force: bool = False, arch: str = ARCH
) -> BundleBuild:
    """Build (or reuse) the *arch* bundle in ``.cache/krunner-bundle`` the way the tests need it."""
    client = client or ensure_engine()
    return build_bundle(BUNDLE_DIR, client=client, base_image=ensure_base_image(client=client),
                        webterm_assets=ensure_webterm_assets(), ca_bundle=host_ca_bundle(), force=force, arch=arch)


def ensure_krunner_volume(client: docker.DockerClient | None = None, arch: str = ARCH) -> InstalledBundle:
    """The *arch* bundle built and its volume installed and verified (once per process)."""
    key = f"{BUNDLE_DIR}:{arch}"
    if key not in _installed:
        client = client or ensure_engine()
        build = ensure_krunner_bundle(client, arch=arch)
        install_volume(build.tarball, client=client, base_image=ensure_base_image(client=client))
        _installed[key] = find_installed_bundle(client, BUNDLE_DIR, arch)
    return _installed[key]


def bundle_mount(
    *, overlay_checkout: bool = False, client: docker.DockerClient | None = None, arch: str = ARCH
) -> KrunnerMount:
    """The installed *arch* bundle; with *overlay_checkout* the working copy's ``krunner/`` and ``ai/`` over it."""
    installed = ensure_krunner_volume(client, arch)
    overlays: list[tuple[Path, str]] = []
    if overlay_checkout:
        _precompile(REPO_ROOT / "krunner", REPO_ROOT / "ai")
        overlays = [(REPO_ROOT / "krunner", f"{SITE_PACKAGES}/krunner"), (REPO_ROOT / "ai", f"{SITE_PACKAGES}/ai")]
    return installed_mount(installed, overlays)


def dev_checkout_mount(client: docker.DockerClient | None = None) -> KrunnerMount:
    """The dev krunner volume plus the working copy's ``krunner/``, ``ai/`` and entrypoint script."""
    _precompile(REPO_ROOT / "krunner", REPO_ROOT / "ai")
    return KrunnerMount(
        volume=ensure_dev_krunner_volume(client=client),
        overlays=[
            (REPO_ROOT / "krunner", f"{DEV_SITE_PACKAGES}/krunner"),
            (REPO_ROOT / "ai", f"{DEV_SITE_PACKAGES}/ai"),
        ],
        entrypoint_host_path=REPO_ROOT / "krunner" / "container_files" / "entrypoint.sh",
    )
