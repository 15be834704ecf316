"""``bai-imagekit registry scan REGISTRY[/NAMESPACE]`` against a real registry on 127.0.0.1: one row per
image with the verdict the manager's rescan reaches, the findings under each image's reference, JSON
and JUnit, catalog/tags pagination."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from xml.etree import ElementTree as ET

import pytest

from imagekit.localenv.registry_seed import (
    copy_image,
    get_blob,
    get_manifest,
    mount_blob,
    push_blob,
    put_manifest,
)
from imagekit.registry.client import RegistryClient

CLI = [sys.executable, "-m", "imagekit.cli"]
NS = "bai-scan"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})


def _variant(registry, src_repo: str, src_tag: str, repo: str, tag: str, labels: dict[str, str] | None) -> str:
    """Put *repo:tag* = the image *src_repo:src_tag* with its labels replaced by *labels* (layers mounted)."""
    source = get_manifest(registry, src_repo, src_tag)
    doc = source.document()
    config = json.loads(get_blob(registry, src_repo, doc["config"]["digest"]))
    config.setdefault("config", {})["Labels"] = labels
    if config.get("container_config"):  # the manager falls back to it: keep the two in step
        config["container_config"]["Labels"] = labels
    for blob in doc["layers"]:
        mount_blob(registry, repo, blob["digest"], src_repo)
    data = json.dumps(config, sort_keys=True).encode()
    digest = push_blob(registry, repo, data)
    body = json.dumps({**doc, "config": {**doc["config"], "digest": digest, "size": len(data)}}).encode()
    return put_manifest(registry, repo, tag, source.media_type, body)


@pytest.fixture(scope="module")
def scan_images(pushed_reference_images, plain_registry):
    """Images under ``bai-scan/`` (and one beside it) with the verdict the rescan gives each."""
    source = pushed_reference_images("python-minimal")
    labels = json.loads(get_blob(plain_registry, source.repository, get_manifest(
        plain_registry, source.repository, source.tag).document()["config"]["digest"]))["config"]["Labels"]
    copy_image(plain_registry, source.repository, source.tag, plain_registry, f"{NS}/kernel", "1.0-py312")
    copy_image(plain_registry, source.repository, source.tag, plain_registry, f"{NS}/kernel", "2024-06-01")
    _variant(plain_registry, source.repository, source.tag, f"{NS}/plain", "latest", None)
    _variant(plain_registry, source.repository, source.tag, f"{NS}/broken", "latest",
             {**labels, "ai.backend.features": "batch  query uid-match"})
    copy_image(plain_registry, source.repository, source.tag, plain_registry, "bai-scanner/other", "latest")
    ref = plain_registry.ref
    return {
        ref(f"{NS}/kernel", "1.0-py312"): "kernel",
        ref(f"{NS}/kernel", "2024-06-01"): "skipped",
        ref(f"{NS}/plain", "latest"): "plain",
        ref(f"{NS}/broken", "latest"): "skipped",
        ref("bai-scanner/other", "latest"): "skipped",  # listed by the manager's prefix match, then not in the project
    }


def _rows(stdout: str) -> dict[str, list[str]]:
    table = stdout.split("\n\n")[0].splitlines()
    assert table[0].split() == ["IMAGE", "VERDICT", "PLATFORMS", "ACCELERATORS", "SIZE", "FINDINGS"]
    return {line.split()[0]: line.split() for line in table[1:]}


def test_scan_prints_one_row_per_image_with_the_rescan_verdict(scan_images, plain_registry):
    out = cli("registry", "scan", f"{plain_registry.address}/{NS}", "--insecure")
    assert out.returncode == 1, out.stderr  # the skipped images have error findings
    rows = _rows(out.stdout)
    assert set(rows) == set(scan_images)
    for reference, verdict in scan_images.items():
        assert rows[reference][1] == verdict, rows[reference]
    assert rows[plain_registry.ref(f"{NS}/plain", "latest")][3] == "*"  # a plain image allows every accelerator
    kernel = rows[plain_registry.ref(f"{NS}/kernel", "1.0-py312")]
    assert kernel[2] == "x86_64" and kernel[-3] == "0E"
    # each image's findings come under its reference
    broken = plain_registry.ref(f"{NS}/broken", "latest")
    assert f"==> {broken} <==" in out.stdout
    assert f"{broken}: error BAI011:" in out.stdout
    dated = plain_registry.ref(f"{NS}/kernel", "2024-06-01")
    assert f"{dated}: error BAI317:" in out.stdout and "'06' is not a platform tag" in out.stdout
    other = plain_registry.ref("bai-scanner/other", "latest")
    assert f"{other}: error BAI317:" in out.stdout and "not in the registry's project 'bai-scan'" in out.stdout
    assert "repositories" in out.stderr  # progress on stderr, the table alone on stdout


def test_scan_of_the_pushed_reference_images(pushed_reference_images, plain_registry):
    pushed = [pushed_reference_images(name) for name in ("python-minimal", "app-shell")]
    out = cli("registry", "scan", f"{plain_registry.address}/bai-ref", "--insecure", "--fail-on", "error")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = _rows(out.stdout)
    for image in pushed:
        assert [r for r in rows if r == image.reference] == [image.reference]
        assert rows[image.reference][1] == "kernel"


def test_scan_json_and_junit(scan_images, plain_registry, tmp_path):
    out = cli("registry", "scan", f"{plain_registry.address}/{NS}", "--insecure", "--format", "json")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    verdicts = {image["reference"]: image["verdict"] for image in doc["images"]}
    assert verdicts == scan_images
    broken = next(i for i in doc["images"] if i["reference"].endswith(f"{NS}/broken:latest"))
    assert {f["rule"] for f in broken["findings"]} >= {"BAI011"}
    assert "blank item" in broken["platforms"][0]["reason"]

    report = tmp_path / "scan.xml"
    out = cli("registry", "scan", f"{plain_registry.address}/{NS}", "--insecure", "--format", "junit",
              "-o", str(report))
    assert out.returncode == 1 and out.stdout == ""
    suite = ET.parse(report).getroot()
    cases = {f"{c.get('classname')}:{c.get('name')}": c for c in suite.iter("testcase")}
    assert set(cases) == set(scan_images)
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    with_errors = {i["reference"] for i in doc["images"] if any(f["severity"] == "error" for f in i["findings"])}
    assert failed == with_errors
    assert with_errors >= {name for name, verdict in scan_images.items() if verdict == "skipped"}
    assert cases[plain_registry.ref(f"{NS}/kernel", "1.0-py312")].find("failure") is None
    assert suite.get("failures") == str(len(failed))


def test_catalog_and_tags_follow_pagination(scan_images, plain_registry):
    with RegistryClient(plain_registry.address, insecure=True, use_docker_config=False, page_size=1) as paged, \
            RegistryClient(plain_registry.address, insecure=True, use_docker_config=False) as whole:
        repositories = list(paged.catalog())
        assert repositories == list(whole.catalog()) and len(repositories) >= 4
        assert sorted(paged.tags(f"{NS}/kernel")) == ["1.0-py312", "2024-06-01"]


def test_scan_over_tls_with_basic_auth(pushed_reference_images, tls_registry, tmp_path):
    pushed = pushed_reference_images("python-minimal", registry=tls_registry)
    config = tmp_path / "docker"
    config.mkdir()
    token = base64.b64encode(f"{tls_registry.username}:{tls_registry.password}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {f"https://{tls_registry.address}": {"auth": token}}}))
    env = {"DOCKER_CONFIG": str(config), "SSL_CERT_FILE": str(tls_registry.ca_cert)}
    out = cli("registry", "scan", tls_registry.address, "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    images = {i["reference"]: i for i in json.loads(out.stdout)["images"]}
    assert images[pushed.reference]["verdict"] == "kernel"
    (config / "config.json").write_text("{}")
    denied = cli("registry", "scan", tls_registry.address, env=env)
    assert denied.returncode == 2 and "needs a user name and password" in denied.stderr


def test_scan_usage_errors(plain_registry):
    out = cli("registry", "scan", "not-a-host")
    assert out.returncode == 2 and "is not a registry host" in out.stderr
    out = cli("registry", "scan", f"http://{plain_registry.address}")
    assert out.returncode == 2 and "without a scheme" in out.stderr

