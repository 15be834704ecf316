"""Shared by ``run``, ``app`` and ``stop``: the Docker client and finding harness containers again."""

from __future__ import annotations

import docker
from docker.errors import NotFound

from krunner.contract import KERNEL_ID_LABEL

from ..engine import connect
from ..errors import EnvironmentProblem, UsageError
from ..harness.container import SCRATCH_ROOT, KernelContainer
from ..harness.krunner_mount import KrunnerMount


def docker_client() -> docker.DockerClient:
    return connect()


def krunner_mount(client: docker.DockerClient, arch: str | None = None) -> KrunnerMount:
    """The self-contained krunner bundle for *arch* (default the host's; it runs in any image of that
    architecture, with or without Python or a libc), as ``krunner build`` and ``krunner install``
    left it; never built or installed here."""
    from imagekit.bundle import ARCH
    from imagekit.bundle.installed import (
        BundleNotInstalled,
        bundle_mount,
        find_installed_bundle,
    )

    try:
        return bundle_mount(find_installed_bundle(client, arch=arch or ARCH))
    except BundleNotInstalled as exc:
        raise EnvironmentProblem(str(exc)) from exc


def stock_runner_mount() -> KrunnerMount:
    """Upstream's runner as a stock agent deploys it (``krunner install --stock`` must have run)."""
    from imagekit.bundle.stock import StockRunnerMissing, find_stock_runner, stock_mount

    try:
        return stock_mount(find_stock_runner())
    except StockRunnerMissing as exc:
        raise EnvironmentProblem(str(exc)) from exc


def find_kernel(client: docker.DockerClient, ref: str) -> KernelContainer:
    """A container started by ``bai-imagekit run`` (by name or id)."""
    try:
        container = client.containers.get(ref)
    except NotFound:
        raise UsageError(f"no container {ref!r} (see `docker ps --filter label=ai.backend.imagekit.harness`)") from None
    kernel_id = (container.labels or {}).get(KERNEL_ID_LABEL)
    if not kernel_id or (container.labels or {}).get("ai.backend.imagekit.harness") != "1":
        raise UsageError(f"container {ref!r} was not started by bai-imagekit")
    return KernelContainer(container=container, kernel_id=kernel_id, scratch_dir=SCRATCH_ROOT / kernel_id)
