"""CI for images/: every reference image is built with `bai-imagekit build` and passes `bai-imagekit test`.

Builds use the local debootstrap base (no registry) and the host's CA bundle for steps that
download from PyPI (``--ca-bundle``, never left in the image); see ``reference_image`` in conftest.py. Each smoke run writes a
JUnit report to ``reports/reference-<name>.xml``.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
REPORTS = REPO / "reports"
IMAGES = sorted(p.name for p in (REPO / "images").iterdir() if (p / "kernel.toml").is_file())
CLI = [sys.executable, "-m", "imagekit.cli"]


def test_every_reference_image_is_covered():
    assert set(IMAGES) == {"python", "python-minimal", "cpp", "nodejs", "r", "app-shell", "inference"}
    for name in IMAGES:
        assert (REPO / "images" / name / "image-test.toml").is_file(), name
        assert "ARG BASE_IMAGE=" in (REPO / "images" / name / "Dockerfile").read_text(), name


@pytest.mark.parametrize("name", IMAGES)
def test_reference_image_builds_and_passes_smoke_test(reference_image, name):
    tag = reference_image(name)  # bai-imagekit build (see conftest.py)
    REPORTS.mkdir(exist_ok=True)
    report = REPORTS / f"reference-{name}.xml"
    out = subprocess.run(
        [*CLI, "test", tag, "--test-file", f"images/{name}/image-test.toml", "--format", "junit", "--report", str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, f"smoke test failed:\n{out.stdout[-6000:]}\n{out.stderr[-3000:]}"
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert int(suite.get("tests")) >= 10
