"""Fill the local test registries by hand, through the registry HTTP API (no engine).

* :func:`copy_image` copies one manifest and its blobs between registries (e.g. into the TLS +
  auth registry, which the engine does not trust – we never touch the engine's certificate dirs);
* :func:`export_oci_layout` writes an image or index into an OCI image layout directory (a local
  multi-platform image, as `skopeo copy … oci:DIR` would);
* :func:`assemble_two_platform_index` makes an ``linux/arm64`` twin of a pushed ``linux/amd64``
  image (its config re-written with ``architecture: arm64``, the layers reused – it need not run)
  and puts an index over both, so per-platform logic meets a real multi-platform image.

A deliberately small client: only what the test set-up needs, for 127.0.0.1 registries.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ._common import LocalEnvError
from .registry import LocalRegistry

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_ACCEPT = ", ".join((DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX))
TIMEOUT_SECONDS = 120
CHUNK_BYTES = 1 << 20

IndexKind = Literal["oci", "docker"]


class Manifest(BaseModel):
    """A manifest as fetched: its media type, exact bytes and digest."""

    model_config = ConfigDict(frozen=True)

    media_type: str
    body: bytes
    digest: str

    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


class PlatformIndex(BaseModel):
    """An index pushed to a registry and the two platform manifests it lists."""

    model_config = ConfigDict(frozen=True)

    reference: str  # 127.0.0.1:PORT/repo:tag
    repository: str
    tag: str
    media_type: str
    digest: str
    amd64_digest: str
    arm64_digest: str
    #: labels of the arm64 config that differ from the amd64 one (empty for the matching index)
    arm64_label_changes: dict[str, str]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _request(
    registry: LocalRegistry,
    method: str,
    path_or_url: str,
    *,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
    ok: tuple[int, ...] = (200,),
) -> tuple[int, dict[str, str], bytes]:
    url = path_or_url if "://" in path_or_url else f"{registry.url}{path_or_url}"
    req = urllib.request.Request(url, data=body, method=method, headers={**registry.auth_header(), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS, context=registry.ssl_context()) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.code, dict(e.headers.items()), e.read()
        raise LocalEnvError(f"{method} {url}: HTTP {e.code}: {e.read()[:500]!r}") from None
    except (urllib.error.URLError, OSError) as e:
        raise LocalEnvError(f"{method} {url}: {e}") from None


def get_manifest(registry: LocalRegistry, repository: str, reference: str) -> Manifest:
    _, headers, body = _request(registry, "GET", f"/v2/{repository}/manifests/{reference}",
                                headers={"Accept": MANIFEST_ACCEPT})
    media_type = headers.get("Content-Type", "").split(";")[0] or json.loads(body).get("mediaType", "")
    return Manifest(media_type=media_type, body=body, digest=_digest(body))


def put_manifest(registry: LocalRegistry, repository: str, reference: str, media_type: str, body: bytes) -> str:
    _request(registry, "PUT", f"/v2/{repository}/manifests/{reference}", body=body,
             headers={"Content-Type": media_type}, ok=(201,))
    return _digest(body)


def get_blob(registry: LocalRegistry, repository: str, digest: str) -> bytes:
    return _request(registry, "GET", f"/v2/{repository}/blobs/{digest}")[2]


def blob_exists(registry: LocalRegistry, repository: str, digest: str) -> bool:
    status, _, _ = _request(registry, "HEAD", f"/v2/{repository}/blobs/{digest}", ok=(200, 404))
    return status == 200


def _start_upload(registry: LocalRegistry, repository: str, query: str = "") -> tuple[int, str]:
    status, headers, _ = _request(registry, "POST", f"/v2/{repository}/blobs/uploads/{query}", ok=(201, 202))
    return status, urllib.parse.urljoin(f"{registry.url}/", headers.get("Location", ""))


def _finish_upload(registry: LocalRegistry, location: str, digest: str, body: bytes | Iterable[bytes], size: int) -> None:
    sep = "&" if "?" in location else "?"
    _request(registry, "PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", body=body,
             headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)}, ok=(201,))


def push_blob(registry: LocalRegistry, repository: str, data: bytes) -> str:
    """Upload *data* as one blob (monolithic upload); returns its digest."""
    digest = _digest(data)
    if not blob_exists(registry, repository, digest):
        _, location = _start_upload(registry, repository)
        _finish_upload(registry, location, digest, data, len(data))
    return digest


def mount_blob(registry: LocalRegistry, repository: str, digest: str, from_repository: str) -> None:
    """Cross-repository mount inside one registry (falls back to a copy if the registry declines)."""
    if blob_exists(registry, repository, digest):
        return
    status, location = _start_upload(registry, repository, f"?mount={urllib.parse.quote(digest)}&from={from_repository}")
    if status == 201:
        return
    data = get_blob(registry, from_repository, digest)
    _finish_upload(registry, location, digest, data, len(data))


def copy_blob(src: LocalRegistry, src_repo: str, dst: LocalRegistry, dst_repo: str, digest: str, size: int) -> None:
    """Stream one blob from *src* to *dst* (one request each way, never the whole layer in memory)."""
    if blob_exists(dst, dst_repo, digest):
        return
    _, location = _start_upload(dst, dst_repo)
    url = f"{src.url}/v2/{src_repo}/blobs/{digest}"
    req = urllib.request.Request(url, headers=src.auth_header())
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS, context=src.ssl_context()) as resp:
            chunks = iter(lambda: resp.read(CHUNK_BYTES), b"")
            _finish_upload(dst, location, digest, chunks, size)
    except urllib.error.HTTPError as e:
        raise LocalEnvError(f"GET {url}: HTTP {e.code}") from None


def copy_image(src: LocalRegistry, src_repo: str, tag: str, dst: LocalRegistry, dst_repo: str, dst_tag: str | None = None) -> str:
    """Copy a single-platform image (manifest, config, layers) *src*/*src_repo*:*tag* → *dst*; returns its digest."""
    manifest = get_manifest(src, src_repo, tag)
    doc = manifest.document()
    if "manifests" in doc:
        raise LocalEnvError(f"{src.ref(src_repo, tag)} is an index; copy_image copies single-platform images")
    for blob in [doc["config"], *doc["layers"]]:
        copy_blob(src, src_repo, dst, dst_repo, blob["digest"], blob["size"])
    return put_manifest(dst, dst_repo, dst_tag or tag, manifest.media_type, manifest.body)


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=3).encode()


def assemble_two_platform_index(
    registry: LocalRegistry,
    src_repo: str,
    src_tag: str,
    repository: str,
    tag: str,
    *,
    kind: IndexKind = "oci",
    arm64_label_changes: dict[str, str] | None = None,
) -> PlatformIndex:
    """Put ``repository:tag`` = an index of the amd64 image *src_repo*:*src_tag* and its arm64 twin.

    The twin's config is the amd64 config with ``architecture: arm64`` / ``variant: v8`` and the
    labels changed by *arm64_label_changes*; its layers are the amd64 ones (mounted, not copied).
    """
    changes = dict(arm64_label_changes or {})
    amd64 = get_manifest(registry, src_repo, src_tag)
    doc = amd64.document()
    if "manifests" in doc:
        raise LocalEnvError(f"{registry.ref(src_repo, src_tag)} is already an index")
    config = json.loads(get_blob(registry, src_repo, doc["config"]["digest"]))
    if config.get("architecture") != "amd64":
        raise LocalEnvError(f"{registry.ref(src_repo, src_tag)} is {config.get('architecture')}, expected amd64")
    for blob in [doc["config"], *doc["layers"]]:
        mount_blob(registry, repository, blob["digest"], src_repo)
    amd64_digest = put_manifest(registry, repository, amd64.digest, amd64.media_type, amd64.body)

    arm_config = json.loads(json.dumps(config))
    arm_config["architecture"] = "arm64"
    arm_config["variant"] = "v8"
    labels = arm_config.setdefault("config", {}).get("Labels") or {}
    arm_config["config"]["Labels"] = {**labels, **changes}
    arm_config_bytes = _canonical(arm_config)
    arm_config_digest = push_blob(registry, repository, arm_config_bytes)
    arm_doc = {**doc, "config": {**doc["config"], "digest": arm_config_digest, "size": len(arm_config_bytes)}}
    arm_body = _canonical(arm_doc)
    arm64_digest = put_manifest(registry, repository, _digest(arm_body), amd64.media_type, arm_body)

    media_type = OCI_INDEX if kind == "oci" else DOCKER_MANIFEST_LIST
    index = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"mediaType": amd64.media_type, "digest": amd64_digest, "size": len(amd64.body),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": amd64.media_type, "digest": arm64_digest, "size": len(arm_body),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    }
    index_digest = put_manifest(registry, repository, tag, media_type, _canonical(index))
    return PlatformIndex(
        reference=registry.ref(repository, tag), repository=repository, tag=tag, media_type=media_type,
        digest=index_digest, amd64_digest=amd64_digest, arm64_digest=arm64_digest, arm64_label_changes=changes,
    )


def _write_blob(root: Path, digest: str, data: bytes) -> None:
    algorithm, hexdigest = digest.split(":", 1)
    path = root / "blobs" / algorithm / hexdigest
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)


def export_oci_layout(registry: LocalRegistry, repository: str, reference: str, dest: Path,
                      ref_name: str | None = None) -> str:
    """Write *repository*:*reference* (an image or an index) into an OCI image layout at *dest*:
    every manifest, config and layer blob copied over the API, ``index.json`` naming it *ref_name*
    (the tag by default). Returns the digest of the top manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    top = get_manifest(registry, repository, reference)
    pending = [top]
    while pending:
        manifest = pending.pop()
        _write_blob(dest, manifest.digest, manifest.body)
        doc = manifest.document()
        for entry in doc.get("manifests", []):
            pending.append(get_manifest(registry, repository, entry["digest"]))
        for blob in [*([doc["config"]] if "config" in doc else []), *doc.get("layers", [])]:
            _write_blob(dest, blob["digest"], get_blob(registry, repository, blob["digest"]))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    name = ref_name or (reference if not reference.startswith("sha256:") else None)
    entry: dict[str, Any] = {"mediaType": top.media_type, "digest": top.digest, "size": len(top.body)}
    if name:
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}))
    return top.digest
