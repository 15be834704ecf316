"""The self-contained krunner bundle: a relocatable CPython + krunner for any x86-64 or aarch64 image.

* :mod:`.bundle_build` – ``krunner build``: assemble the bundle in a builder container;
* :mod:`.debian_base` – the Debian 12 image the builder and the helper containers start from;
* :mod:`.webterm_assets` – the web terminal's front end from npm (part of the build);
* :mod:`.manifest` – the file list (sha256, mode) and its verification;
* :mod:`.volume` – ``krunner install``: the ``backendai-krunner.v<N>.<arch>.<variant>`` volume;
* :mod:`.installed` – what ``test``/``run`` mount: the built bundle and its installed volume
  (never built or installed on the fly);
* :mod:`.stock` – upstream's runner for ``test --runner stock``.

Nothing here looks for a source checkout: the bundle's inputs are the installed ``krunner`` and
``ai.backend.kernel`` packages, its output goes to the user's cache directory.

See ``docs/krunner-volume.md``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from krunner.contract import KERNEL_TOOLS_DIR, KRUNNER_PREFIX

#: bump when the bundle layout changes incompatibly (part of the volume name)
BUNDLE_FORMAT = 1
VARIANT = "static-gnu"
#: the architectures a bundle is built for (``uname -m`` spelling, as in the volume name)
ARCHES: tuple[str, ...] = ("x86_64", "aarch64")
#: Docker platform of each architecture
DOCKER_PLATFORMS = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}
_MACHINE_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


def host_arch() -> str:
    """This machine's architecture in :data:`ARCHES` spelling (x86_64 when unknown)."""
    return _MACHINE_ALIASES.get(platform.machine().lower(), "x86_64")


class EmulationUnavailable(RuntimeError):
    """This host cannot run binaries of another architecture (no enabled binfmt handler)."""


#: where the kernel lists its binfmt handlers
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


def binfmt_handler_state(arch: str, binfmt_dir: Path = BINFMT_DIR) -> tuple[bool, str]:
    """``(enabled, flags)`` of QEMU's binfmt handler ``qemu-<arch>`` (``(False, "")`` when absent)."""
    try:
        text = (binfmt_dir / f"qemu-{arch}").read_text()
    except OSError:
        return False, ""
    lines = text.splitlines()
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    return bool(lines) and lines[0].strip() == "enabled", flags


def emulation_problem(arch: str, binfmt_dir: Path = BINFMT_DIR) -> str | None:
    """Why this host cannot run *arch* binaries, or None: it is the host's own architecture, or QEMU
    user-mode emulation is registered and enabled for it (handler ``qemu-<arch>``). Never changes
    the host."""
    if arch == host_arch() or binfmt_handler_state(arch, binfmt_dir)[0]:
        return None
    handler = binfmt_dir / f"qemu-{arch}"
    return (f"this {host_arch()} host cannot run {arch} binaries: no enabled binfmt handler {handler}. Install "
            "QEMU user-mode emulation (Debian: qemu-user-static binfmt-support, then `update-binfmts --enable "
            f"qemu-{arch}`; see docs/authoring.md, \"arm64 images\")")


#: the default architecture: the host's
ARCH = host_arch()
PREFIX = KRUNNER_PREFIX
PYTHON_VERSION = "3.11"
#: the ``X.Y`` a stock agent is told (krunner-python.<variant>.txt); it bind-mounts its own runner
#: under lib/pythonX.Y/site-packages, which therefore must not be our interpreter's version
AGENT_PYTHON_VERSION = "3.13"
SITE_PACKAGES = f"{PREFIX}/lib/python{PYTHON_VERSION}/site-packages"
KERNEL_DIR_TARGET = KERNEL_TOOLS_DIR
#: the runner's runtime dependencies (incl. transitive ones), pinned: installed into the bundle
RUNNER_REQUIREMENTS: tuple[str, ...] = (
    "pyzmq==27.1.0",
    "uvloop==0.21.0",
    "msgpack==1.1.1",
    "pydantic==2.11.7",
    "pydantic-core==2.33.2",
    "annotated-types==0.7.0",
    "typing-extensions==4.14.1",
    "typing-inspection==0.4.1",
    "ptyprocess==0.7.0",
    "jinja2==3.1.6",
    "markupsafe==3.0.2",
    "websockets==17.4",
)

#: overrides the bundle directory (``krunner build`` output, what ``install``/``package``/``test`` read)
BUNDLE_DIR_ENV = "BAI_IMAGEKIT_BUNDLE_DIR"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/bai-imagekit`` (``~/.cache/bai-imagekit``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bai-imagekit"


def default_output_dir() -> Path:
    """``$BAI_IMAGEKIT_BUNDLE_DIR``, else ``$XDG_CACHE_HOME/bai-imagekit/krunner-bundle``."""
    explicit = os.environ.get(BUNDLE_DIR_ENV)
    return Path(explicit) if explicit else cache_root() / "krunner-bundle"


def krunner_sources() -> Path:
    """The installed ``krunner`` package (the checkout's, in an editable install): copied into the bundle."""
    import krunner

    return Path(krunner.__file__).resolve().parent


def ai_kernel_sources() -> Path:
    """The installed ``ai.backend.kernel`` shim (``python -m ai.backend.kernel`` starts krunner)."""
    import ai.backend.kernel

    return Path(ai.backend.kernel.__file__).resolve().parent


def tarball_name(variant: str = VARIANT, arch: str = ARCH) -> str:
    return f"krunner-env.{variant}.{arch}.tar.xz"


def manifest_name(variant: str = VARIANT, arch: str = ARCH) -> str:
    return f"krunner-env.{variant}.{arch}.manifest.json"


def kernel_dir_name(arch: str = ARCH) -> str:
    """The ``/opt/kernel`` tools directory of a build: ``kernel`` (x86_64), ``kernel.<arch>`` otherwise."""
    return "kernel" if arch == "x86_64" else f"kernel.{arch}"


def volume_name(version: int, arch: str = ARCH, variant: str = VARIANT) -> str:
    """``backendai-krunner.v<N>.<arch>.<variant>``: the agent's name scheme; N is the manifest's
    ``volume_version`` (derived from the content, so a changed bundle never reuses a volume)."""
    return f"backendai-krunner.v{version}.{arch}.{variant}"
