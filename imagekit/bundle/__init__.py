"""The self-contained krunner bundle: a relocatable CPython + krunner for any x86-64 image.

* :mod:`.build` – ``krunner build``: assemble the bundle in a builder container;
* :mod:`.manifest` – the file list (sha256, mode) and its verification;
* :mod:`.volume` – ``krunner install``: the ``backendai-krunner.v<N>.<arch>.<variant>`` volume.

See ``docs/krunner-volume.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

from krunner.contract import KERNEL_TOOLS_DIR, KRUNNER_PREFIX

#: bump when the bundle layout changes incompatibly (part of the volume name)
BUNDLE_FORMAT = 1
VARIANT = "static-gnu"
ARCH = "x86_64"
PREFIX = KRUNNER_PREFIX
PYTHON_VERSION = "3.11"
#: the ``X.Y`` a stock agent is told (krunner-python.<variant>.txt); it bind-mounts its own runner
#: under lib/pythonX.Y/site-packages, which therefore must not be our interpreter's version
AGENT_PYTHON_VERSION = "3.13"
SITE_PACKAGES = f"{PREFIX}/lib/python{PYTHON_VERSION}/site-packages"
KERNEL_DIR_TARGET = KERNEL_TOOLS_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]


def _default_output_dir() -> Path:
    """``.cache/krunner-bundle`` in a checkout; the user's cache dir for an installed toolkit."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / ".cache" / "krunner-bundle"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bai-imagekit" / "krunner-bundle"


DEFAULT_OUTPUT_DIR = _default_output_dir()


def tarball_name(variant: str = VARIANT, arch: str = ARCH) -> str:
    return f"krunner-env.{variant}.{arch}.tar.xz"


def manifest_name(variant: str = VARIANT, arch: str = ARCH) -> str:
    return f"krunner-env.{variant}.{arch}.manifest.json"


def volume_name(version: int, arch: str = ARCH, variant: str = VARIANT) -> str:
    """``backendai-krunner.v<N>.<arch>.<variant>``: the agent's name scheme; N is the manifest's
    ``volume_version`` (derived from the content, so a changed bundle never reuses a volume)."""
    return f"backendai-krunner.v{version}.{arch}.{variant}"
