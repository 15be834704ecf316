"""How the kernel runner gets into a kernel container (volume + read-only overlays)."""

from __future__ import annotations

import compileall
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.types import Mount

from krunner.contract import ENTRYPOINT_PATH as ENTRYPOINT_TARGET
from krunner.contract import KERNEL_TOOLS_DIR as KERNEL_DIR_TARGET
from krunner.contract import KRUNNER_PREFIX as KRUNNER_VOLUME_TARGET

_bundle_mounts: dict[tuple[str, bool, str], KrunnerMount] = {}


def _precompile(*packages: Path) -> None:
    """Write the checkout's bytecode once on the host.

    The packages are mounted read-only, so the runner could never cache its own
    bytecode and would recompile every module on every container start.  The dev
    volume's interpreter is Debian 12's CPython 3.11, which reads the same
    ``cpython-311`` files a host 3.11 writes.
    """
    if sys.version_info[:2] != (3, 11):
        return
    for package in packages:
        compileall.compile_dir(str(package), quiet=2, force=False)


class KrunnerMountError(RuntimeError):
    """A host path needed by a :class:`KrunnerMount` is missing."""


@dataclass(frozen=True)
class KrunnerMount:
    """Mounts that provide the runner inside a kernel container.

    * ``volume`` – Docker volume mounted read-only at ``/opt/backend.ai``;
    * ``overlays`` – ``(host_path, container_path)`` pairs bind-mounted read-only
      (e.g. the checkout's packages over the volume's ``site-packages``);
    * ``entrypoint_host_path`` – mounted read-only at ``/opt/kernel/entrypoint.sh``;
    * ``kernel_dir`` – a host directory whose entries are mounted read-only one by one under
      ``/opt/kernel`` (the bundle's tools: the static ``entrypoint``/``entrypoint.sh``,
      ``su-exec``, ``webterm-assets``). One mount per entry, as the agent does, so what the
      image itself keeps in ``/opt/kernel`` stays visible.
    """

    volume: str
    overlays: list[tuple[Path, str]] = field(default_factory=list)
    entrypoint_host_path: Path | None = None
    kernel_dir: Path | None = None
    #: files copied into each new /home/work (a stock agent's dotfiles: .tmux.conf for its ttyd, …)
    home_files: Path | None = None

    @classmethod
    def dev_checkout(cls, repo_root: Path | None = None, *, client: docker.DockerClient | None = None) -> KrunnerMount:
        """The dev krunner volume plus the checkout's ``krunner/`` and ``ai/`` packages."""
        from imagekit.localenv.krunner_dev import DEV_SITE_PACKAGES, ensure_dev_krunner_volume

        root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]
        _precompile(root / "krunner", root / "ai")
        return cls(
            volume=ensure_dev_krunner_volume(client=client),
            overlays=[
                (root / "krunner", f"{DEV_SITE_PACKAGES}/krunner"),
                (root / "ai", f"{DEV_SITE_PACKAGES}/ai"),
            ],
            entrypoint_host_path=root / "krunner" / "container_files" / "entrypoint.sh",
        )

    @classmethod
    def from_bundle(
        cls,
        output_dir: Path | None = None,
        *,
        overlay_checkout: bool = False,
        repo_root: Path | None = None,
        client: docker.DockerClient | None = None,
    ) -> KrunnerMount:
        """The self-contained bundle (built and installed if needed) plus its ``/opt/kernel`` tools.

        Works in any x86-64 image (no python, no libc, no shell needed).  With
        *overlay_checkout* the checkout's ``krunner/`` and ``ai/`` are bind-mounted over
        the bundle's copies, so runner edits apply without rebuilding the bundle.
        Memoized per process (the build and the volume check run once).
        """
        from imagekit.bundle import SITE_PACKAGES
        from imagekit.bundle.build import build_bundle
        from imagekit.bundle.volume import install_volume

        root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]
        key = (str(output_dir or ""), overlay_checkout, str(root))
        if key not in _bundle_mounts:
            build = build_bundle(output_dir, client=client)
            volume = install_volume(build.tarball, client=client).volume
            overlays: list[tuple[Path, str]] = []
            if overlay_checkout:
                _precompile(root / "krunner", root / "ai")
                overlays = [(root / "krunner", f"{SITE_PACKAGES}/krunner"), (root / "ai", f"{SITE_PACKAGES}/ai")]
            _bundle_mounts[key] = cls(volume=volume, overlays=overlays, kernel_dir=build.kernel_dir)
        return _bundle_mounts[key]

    def validate(self) -> None:
        """Raise :class:`KrunnerMountError` if a host path is missing (Docker would fail obscurely)."""
        for host, _ in self.overlays:
            if not Path(host).exists():
                raise KrunnerMountError(f"krunner overlay source {host} does not exist")
        if self.entrypoint_host_path is not None:
            ep = Path(self.entrypoint_host_path)
            if not ep.is_file():
                raise KrunnerMountError(f"entrypoint {ep} does not exist")
            if not os.access(ep, os.X_OK):
                raise KrunnerMountError(f"entrypoint {ep} is not executable (chmod +x it)")
        if self.kernel_dir is not None:
            kd = Path(self.kernel_dir)
            if not kd.is_dir():
                raise KrunnerMountError(f"kernel tools directory {kd} does not exist")
            ep = kd / Path(ENTRYPOINT_TARGET).name
            if self.entrypoint_host_path is None and not os.access(ep, os.X_OK):
                raise KrunnerMountError(f"{ep} is missing or not executable")

    def docker_mounts(self) -> list[Mount]:
        """Docker ``Mount`` objects (all read-only); the daemon orders them parent-first."""
        mounts = [Mount(KRUNNER_VOLUME_TARGET, self.volume, type="volume", read_only=True)]
        mounts += [Mount(target, str(Path(host).resolve()), type="bind", read_only=True) for host, target in self.overlays]
        if self.kernel_dir is not None:
            tools = sorted(Path(self.kernel_dir).resolve().iterdir())
            mounts += [Mount(f"{KERNEL_DIR_TARGET}/{t.name}", str(t), type="bind", read_only=True) for t in tools]
        if self.entrypoint_host_path is not None:
            mounts.append(Mount(ENTRYPOINT_TARGET, str(Path(self.entrypoint_host_path).resolve()), type="bind", read_only=True))
        return mounts
