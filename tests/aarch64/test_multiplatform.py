"""``bai-imagekit build --platform linux/amd64,linux/arm64 --push``: both platforms built (the arm64
one's ``RUN`` steps under emulation), pushed to a local registry as one manifest list, and validated
from the registry platform by platform; and a label mismatch between the platforms is a finding.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagekit.localenv.base_image import ensure_base_image
from imagekit.localenv.registry import LocalRegistry
from imagekit.registry.client import RegistryClient
from imagekit.registry.manifest import DOCKER_MANIFEST_LIST
from tests.directory_fixtures import local_registry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[LocalRegistry]:
    with local_registry("plain", tmp_path_factory.mktemp("registry-multi") / "state") as reg:
        yield reg


def _build(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imagekit.cli", "build", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=1200)


def test_two_platform_image_is_pushed_as_a_manifest_list_and_validated_per_platform(arm64_images, registry):
    tag = f"{registry.address}/bai/python-minimal:multi"
    out = _build("images/python-minimal", "--platform", "linux/amd64,linux/arm64", "-t", tag, "--push", "--insecure",
                 "--build-arg", f"BASE_IMAGE={ensure_base_image()}",
                 "--build-arg", f"linux/arm64:BASE_IMAGE={arm64_images['debian']}")
    assert out.returncode == 0, f"{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    assert "platforms linux/amd64, linux/arm64: identical ai.backend.* labels" in out.stdout
    assert f"pushed {tag} (sha256:" in out.stdout and "manifest list of linux/amd64, linux/arm64" in out.stdout
    with RegistryClient(registry.address, insecure=True, use_docker_config=False) as client:
        index = client.get_manifest("bai/python-minimal", "multi")
        assert index.media_type == DOCKER_MANIFEST_LIST
        platforms = {(m.platform.os, m.platform.architecture) for m in index.document.manifests}
        assert platforms == {("linux", "amd64"), ("linux", "arm64")}
    # the registry read-back: each platform of the index validated and rescanned on its own
    assert "linux/amd64 (x86_64): registered as a kernel image" in out.stdout
    assert "linux/arm64/v8 (aarch64): registered as a kernel image" in out.stdout
    assert f"==> {tag} (linux/amd64) <==" in out.stdout and f"==> {tag} (linux/arm64/v8) <==" in out.stdout


def test_label_mismatch_between_platforms_is_a_finding():
    """Only ai.backend.* labels count; a difference there is BAI316 naming the platform and the key."""
    from imagekit.findings import Location
    from imagekit.image_multi import label_mismatches

    same = label_mismatches({"linux/amd64": {"ai.backend.runtime-path": "/usr/bin/python3", "other": "x"},
                             "linux/arm64": {"ai.backend.runtime-path": "/usr/bin/python3", "other": "y"}},
                            Location(file="images/python-minimal"))
    assert same == []
    found = label_mismatches({"linux/amd64": {"ai.backend.runtime-path": "/usr/bin/python3"},
                              "linux/arm64": {"ai.backend.runtime-path": "/usr/local/bin/python3"}},
                             Location(file="images/python-minimal"))
    assert [f.rule for f in found] == ["BAI316"]
    assert "linux/arm64" in found[0].message and "ai.backend.runtime-path" in found[0].message


def test_build_arg_for_a_platform_not_built_is_a_usage_error():
    out = _build("images/python-minimal", "--platform", "linux/amd64,linux/arm64", "--dry-run",
                 "--build-arg", "linux/s390x:BASE_IMAGE=x")
    assert out.returncode == 2 and "'linux/s390x' is not one of the --platform values" in out.stderr
