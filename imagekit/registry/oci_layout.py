"""A local OCI image layout read like a registry: ``oci-layout:DIR[:TAG]`` and ``oci-archive:FILE.tar[:TAG]``.

The Docker engine's classic store keeps one platform per tag, so a local multi-platform image lives
in an OCI image layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``) – what
``docker buildx build --output type=oci`` (as a tar) or ``skopeo copy … oci:DIR`` write.
:class:`OciLayoutClient` offers the part of :class:`~.client.RegistryClient` that
:mod:`.view` and :mod:`.layers_fs` use (``get_manifest``, ``get_config``, ``download_blob``), backed
by the directory, so a layout goes through the same per-platform code as a registry image. Every
blob is checked against its digest, as the registry client does.

``TAG`` picks the ``index.json`` entry whose ``org.opencontainers.image.ref.name`` annotation is
``TAG`` (or a full reference ending in ``:TAG``); without it the only (or first) entry is read.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UsageError
from .client import Fetched, NotFoundError, RegistryError
from .manifest import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageConfig,
    ImageIndex,
    ImageManifest,
)
from .reference import TAG_PATTERN, ImageReference

LAYOUT_PREFIX = "oci-layout:"
ARCHIVE_PREFIX = "oci-archive:"
PREFIXES = (LAYOUT_PREFIX, ARCHIVE_PREFIX)
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
MAX_DOCUMENT = 8 << 20
_DIGEST = re.compile(r"^(sha256|sha512):([0-9a-f]+)$")


class LayoutName(BaseModel):
    """``oci-layout:DIR[:TAG]`` / ``oci-archive:FILE[:TAG]`` split up."""

    model_config = ConfigDict(frozen=True)

    archive: bool
    path: Path
    tag: str | None = None


class _Descriptor(BaseModel):
    mediaType: str = ""
    digest: str
    size: int = 0
    annotations: dict[str, str] | None = None


class _LayoutIndex(BaseModel):
    schemaVersion: int = 2
    manifests: list[_Descriptor] = Field(default_factory=list)


def is_layout_name(name: str) -> bool:
    return name.startswith(PREFIXES)


def parse_layout_name(name: str) -> LayoutName:
    if not is_layout_name(name):  # --target-kind oci-layout with a bare path: a file is an archive
        return parse_layout_name((ARCHIVE_PREFIX if Path(name).is_file() else LAYOUT_PREFIX) + name)
    archive = name.startswith(ARCHIVE_PREFIX)
    rest = name[len(ARCHIVE_PREFIX if archive else LAYOUT_PREFIX):]
    if not rest:
        raise UsageError(f"{name}: name a directory ({LAYOUT_PREFIX}DIR[:TAG]) or a tar ({ARCHIVE_PREFIX}FILE[:TAG])")
    path, tag = rest, None
    if ":" in rest and not Path(rest).exists():
        head, tail = rest.rsplit(":", 1)
        if TAG_PATTERN.match(tail) and head:
            path, tag = head, tail
    return LayoutName(archive=archive, path=Path(path), tag=tag)


def _hash(algorithm: str):
    return hashlib.sha256() if algorithm == "sha256" else hashlib.sha512()


class OciLayoutClient:
    """The blobs of one OCI image layout directory, served like :class:`~.client.RegistryClient`."""

    def __init__(self, root: Path, display: str) -> None:
        self.root = root
        self.host = display  # what error messages name
        self._types: dict[str, str] = {}  # media types learnt from descriptors
        self._configs: dict[str, ImageConfig] = {}
        layout = root / "oci-layout"
        if not root.is_dir():
            raise UsageError(f"{display}: no such directory")
        if not layout.is_file() or not (root / "index.json").is_file():
            raise UsageError(f"{display}: not an OCI image layout (no oci-layout and index.json files)")
        try:
            version = json.loads(layout.read_text(encoding="utf-8")).get("imageLayoutVersion")
        except (OSError, ValueError, AttributeError) as exc:
            raise UsageError(f"{display}: not an OCI image layout (oci-layout is not JSON: {exc})") from exc
        if not isinstance(version, str) or not version.startswith("1."):
            raise UsageError(f"{display}: unsupported OCI image layout version {version!r}")
        try:
            self.index = _LayoutIndex.model_validate_json((root / "index.json").read_bytes())
        except (OSError, ValidationError) as exc:
            raise UsageError(f"{display}: index.json is not an OCI image index: {exc}") from exc
        for entry in self.index.manifests:
            self._learn(entry)

    def close(self) -> None:
        pass

    # -- index.json --------------------------------------------------------------------------------

    def _learn(self, entry: _Descriptor) -> None:
        if entry.mediaType:
            self._types.setdefault(entry.digest, entry.mediaType)

    def names(self) -> list[str]:
        return [(e.annotations or {}).get(REF_NAME, "") for e in self.index.manifests]

    def select(self, tag: str | None) -> _Descriptor:
        """The ``index.json`` entry *tag* names (the only/first one without a tag)."""
        entries = self.index.manifests
        if not entries:
            raise UsageError(f"{self.host}: index.json lists no image")
        if tag is None:
            return entries[0]
        for entry in entries:
            notes = entry.annotations or {}
            if notes.get(REF_NAME) == tag or any(notes.get(k, "").endswith(f":{tag}") for k in (REF_NAME,
                                                                                                CONTAINERD_NAME)):
                return entry
        have = ", ".join(n for n in self.names() if n) or "none"
        raise UsageError(f"{self.host}: no image tagged {tag!r} in index.json (tags: {have})")

    # -- blobs -------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        match = _DIGEST.match(digest)
        if match is None:
            raise RegistryError(f"{self.host}: {digest!r} is not a digest this reader can check")
        path = self.root / "blobs" / match.group(1) / match.group(2)
        if not path.is_file():
            raise NotFoundError(f"{self.host}: blob {digest} is missing (no blobs/{match.group(1)}/{match.group(2)})")
        return path

    def _read(self, digest: str, what: str) -> bytes:
        path = self.blob_path(digest)
        if path.stat().st_size > MAX_DOCUMENT:
            raise RegistryError(f"{self.host}: {what} {digest[:19]} is larger than {MAX_DOCUMENT >> 20} MiB")
        raw = path.read_bytes()
        hasher = _hash(digest.split(":", 1)[0])
        hasher.update(raw)
        if f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}" != digest:
            raise RegistryError(f"{self.host}: {what} {digest[:19]}: the blob's content does not match its digest")
        return raw

    def get_manifest(self, repository: str, reference: str) -> Fetched:
        """*reference* is a digest, or the tag given to :meth:`select` (``""`` for the default entry)."""
        digest = reference if _DIGEST.match(reference) else self.select(reference or None).digest
        raw = self._read(digest, "manifest")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"{self.host}: manifest {digest[:19]} is not JSON") from exc
        media_type = self._types.get(digest) or (body.get("mediaType") if isinstance(body, dict) else "") or ""
        if not media_type and isinstance(body, dict):
            media_type = OCI_INDEX if "manifests" in body else OCI_MANIFEST if "config" in body else ""
        document: ImageManifest | ImageIndex | None = None
        try:
            if media_type in MANIFEST_TYPES:
                document = ImageManifest.model_validate(body)
            elif media_type in INDEX_TYPES:
                document = ImageIndex.model_validate(body)
                for entry in document.manifests:
                    if entry.media_type:
                        self._types.setdefault(entry.digest, entry.media_type)
        except ValidationError as exc:
            raise RegistryError(f"{self.host}: the {media_type} document {digest[:19]} is malformed: "
                                f"{exc.errors()[0]['msg']}") from exc
        return Fetched(media_type, digest, raw, document)

    def get_config(self, repository: str, digest: str) -> ImageConfig:
        if digest not in self._configs:
            raw = self._read(digest, "config blob")
            try:
                self._configs[digest] = ImageConfig.model_validate(json.loads(raw))
            except (ValueError, ValidationError) as exc:
                raise RegistryError(f"{self.host}: config blob {digest[:19]} is not an image config") from exc
        return self._configs[digest]

    def download_blob(self, repository: str, digest: str, dest: Path,
                      progress: Callable[[int], None] | None = None) -> None:
        """Copy a blob to *dest*, checking its digest on the way."""
        source = self.blob_path(digest)
        algorithm = digest.split(":", 1)[0]
        hasher = _hash(algorithm)
        with source.open("rb") as src, dest.open("wb") as out:
            while chunk := src.read(1 << 20):
                hasher.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))
        if f"{algorithm}:{hasher.hexdigest()}" != digest:
            dest.unlink(missing_ok=True)
            raise RegistryError(f"{self.host}: blob {digest[:19]}: the content does not match its digest")


def _extract(archive: Path, display: str, stack: ExitStack) -> Path:
    if not archive.is_file():
        raise UsageError(f"{display}: no such file")
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bai-imagekit-oci-")))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(directory, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise UsageError(f"{display}: cannot extract the archive: {exc}") from exc
    return directory


def open_layout(name: str, stack: ExitStack) -> tuple[OciLayoutClient, ImageReference]:
    """The client for *name* and the reference :func:`~.view.read_image` reads (an archive is
    extracted to a temporary directory that is removed when *stack* closes)."""
    parsed = parse_layout_name(name)
    root = _extract(parsed.path, name, stack) if parsed.archive else parsed.path
    client = OciLayoutClient(root, name)
    entry = client.select(parsed.tag)
    # No registry here: the reference carries the digest of the chosen entry; the tag stays unset,
    # so the rescan's tag and project skip rules (registry-only) do not apply.
    ref = ImageReference(registry="oci-layout", repository=parsed.path.name or "image", digest=entry.digest)
    return client, ref
