"""Run a one-off job container (a build step), streaming its output as progress; always removed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import docker
from docker.errors import DockerException
from docker.types import Mount

from ._common import LocalEnvError, log

TAIL_LINES = 40


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
    """Run *command* in a fresh container of *image*, logging each output line as ``what: line``.

    Raises :class:`LocalEnvError` with the last lines of output if it exits non-zero.
    """
    container = client.containers.create(image, list(command), mounts=list(mounts), environment=dict(environment or {}))
    try:
        container.start()
        tail: list[str] = []
        for raw in container.logs(stream=True, follow=True):
            for line in raw.decode(errors="replace").splitlines():
                tail = (tail + [line])[-TAIL_LINES:]
                log(f"{what}: {line}")
        code = int(container.wait(timeout=timeout).get("StatusCode", -1))
        if code != 0:
            shown = "\n".join(f"    {line}" for line in tail)
            raise LocalEnvError(f"{what} failed (exit {code}):\n{shown}")
    finally:
        try:
            container.remove(force=True)
        except DockerException:
            pass
