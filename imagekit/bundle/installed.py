"""What ``bai-imagekit test`` and ``run`` mount: the built bundle and its installed volume.

Both are explicit set-up steps (``bai-imagekit krunner build``, then ``bai-imagekit krunner
install``); nothing here builds or installs.  When either is missing, :class:`BundleNotInstalled`
says exactly which file or volume is missing and which command makes it.  The volume's content is
verified by ``krunner install`` (which repairs it); here only its presence is checked, so a test
run starts no helper container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import NotFound

from imagekit.harness.krunner_mount import KrunnerMount

from . import (
    ARCH,
    default_output_dir,
    kernel_dir_name,
    manifest_name,
    tarball_name,
    volume_name,
)
from .manifest import Manifest, ManifestError

BUILD_COMMAND = "bai-imagekit krunner build"
INSTALL_COMMAND = "bai-imagekit krunner install"


class BundleNotInstalled(RuntimeError):
    """The bundle is not built, or its volume not installed; the message names the command to run."""


@dataclass(frozen=True)
class InstalledBundle:
    output_dir: Path
    manifest: Manifest
    kernel_dir: Path
    volume: str


def _where(output_dir: Path, default: Path) -> str:
    return "" if output_dir == default else f" --output {output_dir}"


def find_installed_bundle(
    client: docker.DockerClient, output_dir: Path | None = None, arch: str = ARCH
) -> InstalledBundle:
    """The *arch* bundle in *output_dir* (default :func:`default_output_dir`) whose volume exists on the engine."""
    default = default_output_dir()
    output_dir = Path(output_dir or default)
    manifest_path, kernel_dir = output_dir / manifest_name(arch=arch), output_dir / kernel_dir_name(arch)
    build = f"{BUILD_COMMAND}{_where(output_dir, default)}{'' if arch == ARCH else f' --arch {arch}'}"
    if not manifest_path.is_file() or not kernel_dir.is_dir():
        missing = manifest_path if not manifest_path.is_file() else kernel_dir
        raise BundleNotInstalled(
            f"no krunner bundle: {missing} is missing. Run `{build}`, then `{INSTALL_COMMAND}` "
            "(or test with --runner stock after `bai-imagekit krunner install --stock`)"
        )
    try:
        manifest = Manifest.from_file(manifest_path)
    except ManifestError as exc:
        raise BundleNotInstalled(f"the krunner bundle in {output_dir} is unusable ({exc}); run `{build} --force`, "
                                 f"then `{INSTALL_COMMAND}`") from exc
    volume = volume_name(manifest.volume_version, manifest.arch, manifest.variant)
    try:
        client.volumes.get(volume)
    except NotFound:
        tarball = output_dir / tarball_name(manifest.variant, manifest.arch)
        install = INSTALL_COMMAND if output_dir == default else f"{INSTALL_COMMAND} --tarball {tarball}"
        raise BundleNotInstalled(
            f"the krunner volume {volume} (for the bundle in {output_dir}, version {manifest.version}) is not on the "
            f"engine. Run `{install}`"
        ) from None
    return InstalledBundle(output_dir, manifest, kernel_dir, volume)


def bundle_mount(installed: InstalledBundle, overlays: list[tuple[Path, str]] | None = None) -> KrunnerMount:
    """The harness mount set: the volume at /opt/backend.ai, ``kernel/`` entries under /opt/kernel.

    *overlays* are extra read-only ``(host path, container path)`` binds (the repository's test
    set-up lays its working copy of ``krunner/`` over the bundle's).
    """
    return KrunnerMount(volume=installed.volume, overlays=list(overlays or []), kernel_dir=installed.kernel_dir)

