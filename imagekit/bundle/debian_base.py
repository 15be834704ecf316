"""The Debian 12 image that ``krunner build`` (its builder image) and ``krunner install`` (its helper
containers: GNU find, coreutils, tar) start from.

``--base-image IMAGE``, else ``$BAI_IMAGEKIT_BASE_IMAGE``, else ``debian:bookworm``. An image missing
on the engine is pulled (the one thing the toolkit may fetch for these commands); when that fails
the error names the option, so an offline machine can point at a local Debian 12 image instead.
"""

from __future__ import annotations

import os

import docker
from docker.errors import DockerException, ImageNotFound

from imagekit.console import progress
from imagekit.docker_jobs import DockerJobError

DEFAULT_BASE_IMAGE = "debian:bookworm"
BASE_IMAGE_ENV = "BAI_IMAGEKIT_BASE_IMAGE"
_HOW = f"give a local Debian 12 (bookworm) image with --base-image IMAGE or ${BASE_IMAGE_ENV}"


class BaseImageUnavailable(DockerJobError):
    """The base image is not on the engine and could not be pulled."""


def resolve_base_image(explicit: str | None = None) -> str:
    """``--base-image`` value, else ``$BAI_IMAGEKIT_BASE_IMAGE``, else ``debian:bookworm``."""
    return explicit or os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE


def require_base_image(client: docker.DockerClient, ref: str) -> str:
    """*ref*, pulled first if the engine does not have it; raises :class:`BaseImageUnavailable`."""
    try:
        client.images.get(ref)
        return ref
    except ImageNotFound:
        pass
    except DockerException as exc:  # e.g. not a valid reference
        raise BaseImageUnavailable(f"cannot use the base image {ref} ({exc}); {_HOW}") from exc
    repository, _, tag = ref.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = ref, "latest"
    progress(f"base image {ref} is not on the engine; pulling it…")
    try:
        client.images.pull(repository, tag=tag)
        client.images.get(ref)
    except DockerException as exc:
        raise BaseImageUnavailable(f"the base image {ref} is not on the engine and pulling it failed ({exc}); {_HOW}") from exc
    return ref
