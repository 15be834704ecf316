"""``bai-imagekit build --platform linux/arm64`` and ``bai-imagekit test --platform linux/arm64`` on the
reference images ``images/python-minimal`` and ``images/app-shell``: built on the arm64 Debian base
(their ``RUN`` steps execute under emulation), smoke-tested under emulation with the aarch64 bundle,
the timeouts scaled and the start reported as emulated.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from imagekit.localenv.emulation import PLATFORM

REPO = Path(__file__).resolve().parents[2]
REFERENCE = ("python-minimal", "app-shell")


def _cli(*argv: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imagekit.cli", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def arm64_reference(arm64_images, aarch64_bundle):
    """``{name: tag}`` of the reference images built for linux/arm64 (Docker's layer cache makes rebuilds cheap)."""
    tags = {}
    for name in REFERENCE:
        tag = f"bai-ref/{name}:arm64"
        out = _cli("build", f"images/{name}", "--platform", PLATFORM, "-t", tag,
                   "--build-arg", f"BASE_IMAGE={arm64_images['debian']}", timeout=1200)
        assert out.returncode == 0, f"building images/{name} for {PLATFORM} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        attrs = docker.from_env().images.get(tag).attrs
        assert (attrs["Os"], attrs["Architecture"]) == ("linux", "arm64"), attrs["Architecture"]
        tags[name] = tag
    return tags


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_image_passes_the_emulated_smoke_test(arm64_reference, name):
    out = _cli("test", "--platform", PLATFORM, arm64_reference[name], "--test-file",
               f"images/{name}/image-test.toml", "--format", "json", timeout=900)
    try:
        [report] = json.loads(out.stdout)["images"]
    except ValueError:
        pytest.fail(f"no JSON report (exit {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    failed = [(r["id"], r["message"], r["details"][-1500:]) for r in report["results"] if r["outcome"] in ("failed", "error")]
    assert out.returncode == 0 and not failed, (out.returncode, report["harness_error"], failed)
    results = {r["id"]: r for r in report["results"]}
    assert results["start"]["outcome"] == "passed"
    assert f"emulated {PLATFORM}, timeouts ×5" in results["start"]["message"]
    assert "emulation" in out.stderr


def test_amd64_image_is_refused_for_arm64(arm64_images, aarch64_bundle, reference_image):
    """An image without the requested platform is a harness error (exit 2) that says how to build it."""
    out = _cli("test", "--platform", PLATFORM, reference_image("python-minimal"), timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"is linux/amd64, not {PLATFORM}" in out.stderr and "--platform linux/arm64" in out.stderr


def test_unknown_platform_is_a_usage_error():
    out = _cli("test", "--platform", "linux/s390x", "any:image", timeout=60)
    assert out.returncode == 2 and "--platform 'linux/s390x': choose one of linux/amd64, linux/arm64" in out.stderr
