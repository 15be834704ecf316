"""The registry test set-up itself: both registries answer as configured, images and indexes are there."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import urllib.error
import urllib.request

import pytest

from imagekit.localenv import LocalEnvError
from imagekit.localenv.registry import ensure_registry, is_healthy, stop_registry
from imagekit.localenv.registry_seed import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    get_blob,
    get_manifest,
)

from .conftest import MISMATCH_LABELS


def _get(url: str, *, headers=None, context=None):
    """(status, headers – case-insensitive, body) of a GET; HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_plain_registry_is_http_on_loopback_and_idempotent(plain_registry):
    assert plain_registry.host == "127.0.0.1" and plain_registry.url.startswith("http://")
    status, headers, _ = _get(f"{plain_registry.url}/v2/")
    assert status == 200 and headers.get("Docker-Distribution-Api-Version") == "registry/2.0"
    assert ensure_registry("plain", plain_registry.directory) == plain_registry  # reused, not restarted
    assert is_healthy(plain_registry)


def test_tls_registry_needs_the_ca_and_the_password(tls_registry):
    assert tls_registry.url.startswith("https://") and tls_registry.ca_cert is not None
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(f"{tls_registry.url}/v2/", timeout=10, context=ssl.create_default_context())
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
    status, headers, _ = _get(f"{tls_registry.url}/v2/", context=tls_registry.ssl_context())
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic ")
    wrong = {"Authorization": "Basic " + base64.b64encode(b"bai-test:wrong").decode()}
    assert _get(f"{tls_registry.url}/v2/", headers=wrong, context=tls_registry.ssl_context())[0] == 401
    status, _, _ = _get(f"{tls_registry.url}/v2/", headers=tls_registry.auth_header(), context=tls_registry.ssl_context())
    assert status == 200


def test_reference_image_is_pushed_and_copied_to_the_tls_registry(pushed_reference_images, plain_registry, tls_registry):
    plain = pushed_reference_images("python-minimal")
    assert plain.reference == f"{plain_registry.address}/bai-ref/python-minimal:latest"
    status, _, body = _get(f"{plain_registry.url}/v2/bai-ref/python-minimal/tags/list")
    assert status == 200 and json.loads(body)["tags"] == ["latest"]
    assert get_manifest(plain_registry, plain.repository, "latest").digest == plain.digest

    tls = pushed_reference_images("python-minimal", registry=tls_registry)
    assert tls.reference.startswith(tls_registry.address) and tls.digest == plain.digest
    manifest = get_manifest(tls_registry, tls.repository, "latest").document()
    config = json.loads(get_blob(tls_registry, tls.repository, manifest["config"]["digest"]))
    assert config["config"]["Labels"]["ai.backend.runtime-type"] == "python"


def test_two_platform_indexes(two_platform_index, plain_registry):
    idx = two_platform_index
    for index, media_type in ((idx.matching, OCI_INDEX), (idx.manifest_list, DOCKER_MANIFEST_LIST), (idx.mismatch, OCI_INDEX)):
        served = get_manifest(plain_registry, index.repository, index.tag)
        assert served.media_type == media_type and served.digest == index.digest
        platforms = [(m["platform"]["architecture"], m["digest"]) for m in served.document()["manifests"]]
        assert platforms == [("amd64", index.amd64_digest), ("arm64", index.arm64_digest)]
        assert index.amd64_digest == idx.source.digest

    def labels(digest: str) -> tuple[str, dict[str, str]]:
        manifest = get_manifest(plain_registry, idx.matching.repository, digest).document()
        config = json.loads(get_blob(plain_registry, idx.matching.repository, manifest["config"]["digest"]))
        return config["architecture"], config["config"]["Labels"]

    arch, amd64_labels = labels(idx.matching.amd64_digest)
    assert arch == "amd64"
    assert labels(idx.matching.arm64_digest) == ("arm64", amd64_labels)
    arch, mismatched = labels(idx.mismatch.arm64_digest)
    assert arch == "arm64" and mismatched == {**amd64_labels, **MISMATCH_LABELS} != amd64_labels


def test_a_dead_registry_is_replaced_and_stop_removes_everything(tmp_path):
    directory = tmp_path / "state"
    first = ensure_registry("plain", directory)
    try:
        os.kill(first.pid, signal.SIGKILL)
        os.waitpid(first.pid, 0)  # our child: reap it, so it is gone for good
        second = ensure_registry("plain", directory)
        assert second.pid != first.pid and is_healthy(second)
        assert _get(f"{second.url}/v2/")[0] == 200
    finally:
        stop_registry(directory)
    assert not directory.exists()
    assert _probe_refused(second.url)


def test_a_directory_with_other_files_is_never_taken_over(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LocalEnvError, match="holds other files"):
        ensure_registry("plain", tmp_path)
    with pytest.raises(LocalEnvError, match="holds other files"):
        stop_registry(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def _probe_refused(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/v2/", timeout=5)
    except urllib.error.URLError as e:
        return isinstance(e.reason, ConnectionRefusedError)
    return False
