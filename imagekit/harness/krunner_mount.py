"""How the kernel runner gets into a kernel container (volume + read-only overlays).

Where a mount set comes from is someone else's job: :mod:`imagekit.bundle.installed` (the built and
installed bundle), :mod:`imagekit.bundle.stock` (upstream's runner), and this repository's test
set-up for its development variants.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from docker.types import Mount

from krunner.contract import ENTRYPOINT_PATH as ENTRYPOINT_TARGET
from krunner.contract import KERNEL_TOOLS_DIR as KERNEL_DIR_TARGET
from krunner.contract import KRUNNER_PREFIX as KRUNNER_VOLUME_TARGET


class KrunnerMountError(RuntimeError):
    """A host path needed by a :class:`KrunnerMount` is missing."""


@dataclass(frozen=True)
class KrunnerMount:
    """Mounts that provide the runner inside a kernel container.

    * ``volume`` – Docker volume mounted read-only at ``/opt/backend.ai``;
    * ``overlays`` – ``(host_path, container_path)`` pairs bind-mounted read-only
      (e.g. newer runner sources over the volume's ``site-packages``);
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
