"""CI for images/: every reference image is built with `bai-imagekit build`, then all of them are
smoke-tested by one `bai-imagekit test -j 2` run, each with its own image-test.toml.

Builds use the local debootstrap base (no registry) and the host's CA bundle for steps that
download from PyPI (``--ca-bundle``, never left in the image); see ``reference_image`` in
conftest.py. The JUnit report is written to ``reports/reference-images.xml``.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "reports" / "reference-images.xml"
IMAGES = sorted(p.name for p in (REPO / "images").iterdir() if (p / "kernel.toml").is_file())
CLI = [sys.executable, "-m", "imagekit.cli"]
JOBS = 2  # the machine has two cores


def test_every_reference_image_is_covered():
    assert set(IMAGES) == {"python", "python-minimal", "cpp", "nodejs", "r", "app-shell", "inference"}
    for name in IMAGES:
        assert (REPO / "images" / name / "image-test.toml").is_file(), name
        assert "ARG BASE_IMAGE=" in (REPO / "images" / name / "Dockerfile").read_text(), name


def test_reference_images_build_and_pass_smoke_tests(reference_image):
    tags = {name: reference_image(name) for name in IMAGES}  # bai-imagekit build, one after another
    REPORT.parent.mkdir(exist_ok=True)
    test_files = [f"--test-file={tags[n]}=images/{n}/image-test.toml" for n in IMAGES]
    out = subprocess.run(
        [*CLI, "test", "-j", str(JOBS), *tags.values(), *test_files, "--format", "junit", "--report", str(REPORT)],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )
    assert out.returncode == 0, f"smoke tests failed:\n{out.stdout[-8000:]}\n{out.stderr[-3000:]}"
    suites = {s.get("name"): s for s in ET.parse(REPORT).getroot().findall("testsuite")}
    assert set(suites) == set(tags.values())
    for name, tag in tags.items():
        suite = suites[tag]
        assert suite.get("failures") == "0" and suite.get("errors") == "0", name
        cases = {c.get("name") for c in suite.findall("testcase")}
        assert {"labels", "start", "author.command.1"} <= cases, (name, cases)
