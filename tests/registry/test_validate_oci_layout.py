"""``bai-imagekit validate oci-layout:DIR[:TAG]`` / ``oci-archive:FILE.tar[:TAG]``: a local multi-platform
image (an OCI image layout, written here from the two-platform index in a real registry on 127.0.0.1)
reads like the registry image – per-platform verdicts and findings, BAI316 for platforms whose labels
differ – and what is not a usable layout exits 2 with a clear message."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from imagekit.localenv.registry_seed import export_oci_layout
from tests.registry import test_validate_registry as shared
from tests.registry.test_validate_registry import as_json, cli, comparable

#: an empty DOCKER_CONFIG for every CLI run (the registry tests' fixture)
docker_config = shared.docker_config
pytestmark = pytest.mark.usefixtures("docker_config")

PLATFORMS = ("linux/amd64", "linux/arm64/v8")


def per_platform(doc: dict, name: str) -> dict[str, list[tuple]]:
    """Each platform's findings, without the target's name."""
    out = {}
    for platform in PLATFORMS:
        target = f"{name} ({platform})"
        out[platform] = comparable([f for f in doc["findings"] if f["target"] == target], target)
    return out


@pytest.fixture(scope="module")
def layouts(two_platform_index, plain_registry, tmp_path_factory) -> dict[str, Path]:
    """The matching and the mismatching index, each as an OCI layout directory (tagged ``v1``)."""
    root = tmp_path_factory.mktemp("oci-layouts")
    out = {}
    for key in ("matching", "mismatch"):
        index = getattr(two_platform_index, key)
        export_oci_layout(plain_registry, index.repository, index.tag, root / key, ref_name="v1")
        out[key] = root / key
    return out


def test_a_layout_gives_the_registry_images_findings_per_platform(two_platform_index, layouts):
    index = two_platform_index.matching
    there = cli("validate", "--insecure", index.reference, "--format", "json")
    name = f"oci-layout:{layouts['matching']}:v1"
    here = cli("validate", name, "--format", "json")
    assert there.returncode in (0, 1), there.stderr
    assert here.returncode == there.returncode, here.stderr
    local_doc, remote_doc = as_json(here), as_json(there)
    assert local_doc["targets"] == [f"{name} ({p})" for p in PLATFORMS]
    assert per_platform(local_doc, name) == per_platform(remote_doc, index.reference)
    assert any(rule.startswith("BAI3") for rule, *_ in per_platform(local_doc, name)["linux/amd64"])
    (image,) = local_doc["rescan"]
    (remote,) = remote_doc["rescan"]
    assert image["digest"] == index.digest and image["media_type"] == index.media_type
    assert [(p["platform"], p["architecture"], p["verdict"], p["size"]) for p in image["platforms"]] == \
        [(p["platform"], p["architecture"], p["verdict"], p["size"]) for p in remote["platforms"]]


def test_platforms_with_different_labels_are_flagged(two_platform_index, layouts):
    name = f"oci-layout:{layouts['mismatch']}"  # no tag: the only entry of index.json
    out = cli("validate", "--labels-only", name, "--format", "json")
    (finding,) = [f for f in as_json(out)["findings"] if f["rule"] == "BAI316"]
    assert finding["target"] == f"{name} (linux/arm64/v8)"
    (label,) = two_platform_index.mismatch.arm64_label_changes
    assert label in finding["message"]


def test_an_oci_archive_of_the_layout_reads_the_same(layouts, tmp_path):
    archive = tmp_path / "img.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(layouts["matching"].rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layouts["matching"])), recursive=False)
    directory = cli("validate", f"oci-layout:{layouts['matching']}", "--format", "json")
    packed = cli("validate", f"oci-archive:{archive}:v1", "--format", "json")
    assert packed.returncode == directory.returncode, packed.stderr
    assert per_platform(as_json(packed), f"oci-archive:{archive}:v1") == \
        per_platform(as_json(directory), f"oci-layout:{layouts['matching']}")


def test_unusable_layouts_exit_2_with_a_clear_message(layouts, tmp_path):
    (tmp_path / "plain").mkdir()
    broken = tmp_path / "broken"
    for path in [p for p in layouts["matching"].rglob("*") if p.is_file()]:
        dest = broken / path.relative_to(layouts["matching"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
    manifest = json.loads((broken / "index.json").read_text())["manifests"][0]["digest"]
    first_layer = _first_layer(broken, manifest)
    (broken / "blobs" / "sha256" / first_layer.split(":", 1)[1]).unlink()
    cases = {
        f"oci-layout:{tmp_path / 'nowhere'}": "no such directory",
        f"oci-archive:{tmp_path / 'nowhere.tar'}": "no such file",
        f"oci-layout:{tmp_path / 'plain'}": "not an OCI image layout",
        f"oci-layout:{layouts['matching']}:v9": "no image tagged 'v9' in index.json (tags: v1)",
        f"oci-layout:{broken}": f"blob {first_layer} is missing",
    }
    for name, message in cases.items():
        out = cli("validate", name, "--format", "json")
        assert out.returncode == 2, (name, out.stdout[-500:], out.stderr[-2000:])
        assert message in out.stderr, (name, out.stderr[-2000:])


def _first_layer(root: Path, index_digest: str) -> str:
    def doc(digest: str) -> dict:
        return json.loads((root / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes())
    return doc(doc(index_digest)["manifests"][0]["digest"])["layers"][0]["digest"]
