"""The OCI image layout reader on a tiny hand-made layout: two platforms read like a registry index,
digests checked, tags picked from index.json, and clear errors for what is not a usable layout."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from imagekit.errors import UsageError
from imagekit.registry.client import NotFoundError, RegistryError
from imagekit.registry.oci_layout import OciLayoutClient, open_layout, parse_layout_name
from imagekit.registry.view import read_image

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LABELS = {"ai.backend.kernelspec": "1", "ai.backend.features": "uid-match"}


def _blob(root: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/hello")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return gzip.compress(buf.getvalue())


def make_layout(root: Path, tag: str = "v1") -> dict[str, str]:
    """Two platforms (amd64, arm64) under one OCI index, named *tag* in index.json."""
    root.mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(root, _layer())}
    entries, digests = [], {}
    for arch in ("amd64", "arm64"):
        config = {"architecture": arch, "os": "linux", "config": {"Labels": LABELS},
                  "rootfs": {"type": "layers", "diff_ids": []}}
        cfg = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(root, json.dumps(config).encode())}
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg, "layers": [layer]}
        desc = {"mediaType": OCI_MANIFEST, **_blob(root, json.dumps(manifest).encode()),
                "platform": {"os": "linux", "architecture": arch}}
        digests[arch] = desc["digest"]
        entries.append(desc)
    index = _blob(root, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode())
    digests["index"] = index["digest"]
    top = {"schemaVersion": 2, "manifests": [{"mediaType": OCI_INDEX, **index,
                                               "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (root / "index.json").write_text(json.dumps(top))
    return digests


def test_a_layout_reads_like_a_registry_index(tmp_path):
    digests = make_layout(tmp_path / "img")
    with ExitStack() as stack:
        client, ref = open_layout(f"oci-layout:{tmp_path / 'img'}:v1", stack)
        view = read_image(client, ref)  # type: ignore[arg-type]
    assert view.digest == digests["index"] and view.media_type == OCI_INDEX
    assert [(p.platform, p.architecture, p.verdict.value) for p in view.platforms] == [
        ("linux/amd64", "x86_64", "kernel"), ("linux/arm64", "aarch64", "kernel")]
    assert view.platforms[1].manifest_digest == digests["arm64"]
    assert view.platforms[0].labels == LABELS
    layer = view.platforms[0].layers[0]
    dest = tmp_path / "layer"
    client.download_blob("img", layer.digest, dest)
    assert dest.stat().st_size == layer.size


def test_an_archive_is_extracted_and_removed_afterwards(tmp_path):
    make_layout(tmp_path / "img")
    archive = tmp_path / "img.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted((tmp_path / "img").rglob("*")):
            tar.add(path, arcname=str(path.relative_to(tmp_path / "img")), recursive=False)
    with ExitStack() as stack:
        client, ref = open_layout(f"oci-archive:{archive}", stack)
        assert len(read_image(client, ref).platforms) == 2  # type: ignore[arg-type]
        extracted = client.root
        assert extracted.is_dir()
    assert not extracted.exists()


def test_names_and_tags(tmp_path):
    assert parse_layout_name("oci-layout:/x/y:v2").tag == "v2"
    assert parse_layout_name("oci-layout:/x/y").tag is None
    assert parse_layout_name("oci-archive:img.tar").archive
    make_layout(tmp_path / "img", tag="v1")
    client = OciLayoutClient(tmp_path / "img", "img")
    with pytest.raises(UsageError, match=r"no image tagged 'v9' in index.json \(tags: v1\)"):
        client.select("v9")


def test_errors_are_clear(tmp_path):
    with ExitStack() as stack:
        with pytest.raises(UsageError, match="no such directory"):
            open_layout(f"oci-layout:{tmp_path / 'none'}", stack)
        with pytest.raises(UsageError, match="no such file"):
            open_layout(f"oci-archive:{tmp_path / 'none.tar'}", stack)
        (tmp_path / "plain").mkdir()
        with pytest.raises(UsageError, match="not an OCI image layout"):
            open_layout(f"oci-layout:{tmp_path / 'plain'}", stack)
    digests = make_layout(tmp_path / "img")
    client = OciLayoutClient(tmp_path / "img", "img")
    blob = tmp_path / "img" / "blobs" / "sha256" / digests["arm64"].split(":", 1)[1]
    blob.write_bytes(blob.read_bytes() + b" ")
    with pytest.raises(RegistryError, match="does not match its digest"):
        client.get_manifest("img", digests["arm64"])
    blob.unlink()
    with pytest.raises(NotFoundError, match="is missing"):
        client.get_manifest("img", digests["arm64"])
    view = read_image(client, open_layout(f"oci-layout:{tmp_path / 'img'}", ExitStack())[1])  # type: ignore[arg-type]
    assert view.platforms[1].verdict.value == "fails"
