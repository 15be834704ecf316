"""The one way the product reaches Docker: connect to the engine the environment names.

It never installs or starts anything (that is this repository's own test set-up, never the
product's job); when no engine answers it says where it looked, as an environment error (exit 2).
"""

from __future__ import annotations

import os

import docker
from docker.errors import DockerException

from .errors import EnvironmentProblem

#: long enough for image builds and pushes streamed through the API
CLIENT_TIMEOUT_SECONDS = 600


def connect(timeout: int = CLIENT_TIMEOUT_SECONDS) -> docker.DockerClient:
    """A client for the engine named by ``DOCKER_HOST`` (or the default socket), checked to answer."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (DockerException, OSError) as exc:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise EnvironmentProblem(
            f"cannot reach the Docker engine at {where}: {exc} (start dockerd, or set DOCKER_HOST)"
        ) from exc
    return client
