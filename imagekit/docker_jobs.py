"""Throw-away job containers (a build step, a helper) and the error every piece of engine work raises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import docker
from docker.errors import DockerException
from docker.types import Mount

from .console import progress

TAIL_LINES = 40


class DockerJobError(RuntimeError):
    """Work the toolkit does on the engine failed: an image build, a job or helper container, a volume."""


def run_job(
    client: docker.DockerClient,
    image: str,
    command: Sequence[str],
    *,
    what: str,
    mounts: Sequence[Mount] = (),
    environment: Mapping[str, str] | None = None,
    timeout: float = 1200,
) -> None:
    """Run *command* in a fresh container of *image*, showing each output line as ``what: line``.

    The container is always removed. Raises :class:`DockerJobError` with the last lines of output if
    it exits non-zero.
    """
    container = client.containers.create(image, list(command), mounts=list(mounts), environment=dict(environment or {}))
    try:
        container.start()
        tail: list[str] = []
        for raw in container.logs(stream=True, follow=True):
            for line in raw.decode(errors="replace").splitlines():
                tail = (tail + [line])[-TAIL_LINES:]
                progress(f"{what}: {line}")
        code = int(container.wait(timeout=timeout).get("StatusCode", -1))
        if code != 0:
            shown = "\n".join(f"    {line}" for line in tail)
            raise DockerJobError(f"{what} failed (exit {code}):\n{shown}")
    finally:
        try:
            container.remove(force=True)
        except DockerException:
            pass
