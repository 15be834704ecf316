"""Image references as the docker CLI reads them: ``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]``.

The first path component is the registry when it looks like a host (it has a ``.`` or a ``:``, or
is ``localhost``); otherwise the registry is Docker Hub (``docker.io``, API host
``registry-1.docker.io``) and a one-component repository gets ``library/`` in front. Without a tag
or digest the tag is ``latest``.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from ..errors import UsageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
DEFAULT_TAG = "latest"

_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
TAG_PATTERN = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


class ImageReference(BaseModel):
    """A parsed reference; ``registry`` is ``host[:port]`` as written (``docker.io`` for Docker Hub)."""

    model_config = ConfigDict(frozen=True)

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What ``/v2/<repo>/manifests/<reference>`` takes: the digest if given, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry in DOCKER_HUB_ALIASES else self.registry

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_registry_host(text: str) -> bool:
    """``text`` (the first path component) names a registry rather than a Docker Hub namespace."""
    return text == "localhost" or (("." in text or ":" in text) and bool(_HOST.match(text)))


def looks_like_registry_reference(name: str) -> bool:
    """*name* starts with a registry host and a ``/`` (``127.0.0.1:5000/x``, ``cr.example.com/a/b:1``)."""
    if name.startswith((".", "/", "~")) or "/" not in name:
        return False
    return is_registry_host(name.split("/", 1)[0])


def parse_reference(text: str) -> ImageReference:
    """Parse *text*; a malformed reference is a :class:`~imagekit.errors.UsageError`."""
    original = text
    if "://" in text:
        raise UsageError(f"{original}: write the image reference without a scheme "
                         "(REGISTRY/REPOSITORY:TAG; --insecure selects plain HTTP)")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise UsageError(f"{original}: {digest!r} is not a digest (ALGORITHM:HEX, e.g. sha256:…)")
    first, _, rest = text.partition("/")
    if rest and is_registry_host(first):
        registry, remainder = first, rest
    else:
        registry, remainder = DOCKER_HUB, text
    tag = None
    last = remainder.rsplit("/", 1)[-1]
    if ":" in last:
        remainder, tag = remainder.rsplit(":", 1)
        if not TAG_PATTERN.match(tag):
            raise UsageError(f"{original}: {tag!r} is not a valid tag")
    if not remainder:
        raise UsageError(f"{original}: no repository name")
    components = remainder.split("/")
    for component in components:
        if not _COMPONENT.match(component):
            raise UsageError(f"{original}: {component!r} is not a valid repository path component "
                             "(lowercase letters, digits and single . _ __ - separators)")
    if registry == DOCKER_HUB and len(components) == 1:
        remainder = f"library/{remainder}"
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageReference(registry=registry, repository=remainder, tag=tag, digest=digest)


def parse_registry_target(text: str) -> tuple[str, str]:
    """``REGISTRY[/NAMESPACE]`` → (registry, namespace or ""); the registry must look like a host."""
    if "://" in text:
        raise UsageError(f"{text}: write the registry without a scheme (HOST[:PORT][/NAMESPACE]; "
                         "--insecure selects plain HTTP)")
    registry, _, namespace = text.strip("/").partition("/")
    if not is_registry_host(registry):
        raise UsageError(f"{text}: {registry!r} is not a registry host (HOST[:PORT], e.g. 127.0.0.1:5000 "
                         "or cr.example.com)")
    for component in namespace.split("/") if namespace else ():
        if not _COMPONENT.match(component):
            raise UsageError(f"{text}: {component!r} is not a valid namespace component")
    return registry, namespace
