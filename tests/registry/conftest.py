"""Registry fixtures: real ``docker-registry`` processes on 127.0.0.1, filled with real images.

* ``plain_registry`` – HTTP, no auth; the engine pushes to it directly (127.0.0.0/8 is insecure
  by default for Docker, so no engine configuration is needed).
* ``tls_registry`` – HTTPS with a CA made by the set-up (``tls_registry.ca_cert``) and htpasswd
  basic auth (``tls_registry.username`` / ``.password``). Images get there by copying manifests
  and blobs over the registry API from the plain registry, not through the engine: that way the
  tests never write into ``/etc/docker/certs.d`` or a Docker config on the shared host.
* ``pushed_reference_images(name, registry=None)`` – ``bai-ref/<name>:latest`` (built by
  ``reference_image``) pushed to the plain registry (or copied on to *registry*).
* ``two_platform_index`` – amd64 + arm64 indexes assembled by hand through the API.

Every registry is started once per session in a pytest temp dir and killed/removed at the end.
Tests in this directory are marked ``registry`` and ``docker``, and bounded by
:data:`TIMEOUT_SECONDS` unless they set their own timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagekit.localenv.registry import LocalRegistry
from imagekit.localenv.registry_seed import (
    PlatformIndex,
    assemble_two_platform_index,
    copy_image,
    get_manifest,
)
from tests.directory_fixtures import local_registry, mark_directory

#: the reference image the multi-platform indexes are made from (the smallest one)
INDEX_SOURCE = "python-minimal"
#: the arm64 twin in ``two_platform_index.mismatch`` differs from amd64 in exactly this label
MISMATCH_LABELS = {"ai.backend.runtime-path": "/usr/local/bin/python3"}


#: per-test bound, session fixtures included: the first test may build and push a reference image
TIMEOUT_SECONDS = 1500


def pytest_collection_modifyitems(config, items):
    mark_directory(items, Path(__file__).parent, ("registry", "docker"), TIMEOUT_SECONDS)


def _registry(kind, tmp_path_factory) -> Iterator[LocalRegistry]:
    with local_registry(kind, tmp_path_factory.mktemp(f"registry-{kind}") / "state") as registry:
        yield registry


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory) -> Iterator[LocalRegistry]:
    """A plain-HTTP registry on 127.0.0.1:<free port> (``.address``, ``.url``, ``.ref(repo, tag)``)."""
    yield from _registry("plain", tmp_path_factory)


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory) -> Iterator[LocalRegistry]:
    """An HTTPS + basic-auth registry: ``.url``, ``.username``, ``.password``, ``.ca_cert``."""
    yield from _registry("tls", tmp_path_factory)


@dataclass(frozen=True)
class PushedImage:
    """A reference image as it sits in a test registry."""

    registry: LocalRegistry
    repository: str  # bai-ref/<name>
    tag: str
    digest: str  # of the manifest

    @property
    def reference(self) -> str:
        """``127.0.0.1:PORT/bai-ref/<name>:latest``."""
        return self.registry.ref(self.repository, self.tag)

    def __str__(self) -> str:
        return self.reference


def push_through_engine(client, local_tag: str, registry: LocalRegistry, repository: str, tag: str) -> str:
    """``docker push`` *local_tag* as ``<registry>/<repository>:<tag>``; returns the pushed digest."""
    target = f"{registry.address}/{repository}"
    client.images.get(local_tag).tag(target, tag)
    try:
        digest = None
        for line in client.images.push(target, tag, stream=True, decode=True,
                                       auth_config=registry.docker_auth_config()):
            if "error" in line:
                pytest.fail(f"pushing {local_tag} to {target}:{tag} failed: {line['error']}", pytrace=False)
            digest = (line.get("aux") or {}).get("Digest", digest)
    finally:
        client.images.remove(f"{target}:{tag}", noprune=True)
    if digest is None:
        pytest.fail(f"pushing {local_tag} to {target}:{tag} reported no digest", pytrace=False)
    return digest


@pytest.fixture(scope="session")
def pushed_reference_images(reference_image, plain_registry) -> Callable[..., PushedImage]:
    """``pushed_reference_images("python")`` → ``bai-ref/python:latest`` pushed by the engine to the
    plain registry; ``pushed_reference_images("python", registry=tls_registry)`` also copies it on
    to that registry over the API. Each image is pushed/copied once per session."""
    from imagekit.localenv.engine import ensure_engine

    client = ensure_engine()
    done: dict[tuple[str, int], PushedImage] = {}

    def push(name: str, registry: LocalRegistry | None = None) -> PushedImage:
        repository, tag = f"bai-ref/{name}", "latest"
        key = (name, plain_registry.port)
        if key not in done:
            digest = push_through_engine(client, reference_image(name), plain_registry, repository, tag)
            done[key] = PushedImage(plain_registry, repository, tag, digest)
        if registry is None or registry.port == plain_registry.port:
            return done[key]
        other = (name, registry.port)
        if other not in done:
            digest = copy_image(plain_registry, repository, tag, registry, repository, tag)
            done[other] = PushedImage(registry, repository, tag, digest)
        return done[other]

    return push


@dataclass(frozen=True)
class TwoPlatformIndexes:
    """Indexes over ``linux/amd64`` (the pushed reference image) and a hand-made ``linux/arm64`` twin.

    ``matching``: an OCI image index, same ``ai.backend.*`` labels on both platforms;
    ``manifest_list``: the same as a Docker manifest list;
    ``mismatch``: an OCI index whose arm64 config differs in :data:`MISMATCH_LABELS`.
    The arm64 twin reuses the amd64 layers; it is never meant to run.
    """

    source: PushedImage
    matching: PlatformIndex
    manifest_list: PlatformIndex
    mismatch: PlatformIndex


@pytest.fixture(scope="session")
def two_platform_index(pushed_reference_images, plain_registry) -> TwoPlatformIndexes:
    source = pushed_reference_images(INDEX_SOURCE)
    repo = f"bai-multi/{INDEX_SOURCE}"

    def index(tag: str, kind: str, changes: dict[str, str] | None = None) -> PlatformIndex:
        return assemble_two_platform_index(plain_registry, source.repository, source.tag, repo, tag,
                                           kind=kind, arm64_label_changes=changes)

    indexes = TwoPlatformIndexes(
        source=source,
        matching=index("latest", "oci"),
        manifest_list=index("manifest-list", "docker"),
        mismatch=index("mismatch", "oci", MISMATCH_LABELS),
    )
    served = get_manifest(plain_registry, repo, "latest")
    assert served.digest == indexes.matching.digest, "the registry serves a different index than the one pushed"
    return indexes
