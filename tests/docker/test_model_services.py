"""``bai-imagekit test IMAGE --model DIR [--runtime-variant NAME]`` on images/inference: the model
is resolved like the manager does, port-checked like the agent does and started through
start-model-service; the check passes only when the service answers HTTP in the container."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "images" / "inference" / "model"
CLI = [sys.executable, "-m", "imagekit.cli"]


def _model_check(image: str, *extra: str) -> dict:
    out = subprocess.run([*CLI, "test", image, "--model", str(MODEL), "--format", "json", "-q", *extra],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode in (0, 1), out.stderr[-3000:]
    (report,) = json.loads(out.stdout)["images"]
    results = {r["id"]: r for r in report["results"]}
    return results["inference.model-service"] | {"_all": results, "_rc": out.returncode}


def test_model_folder_served_with_health_check(reference_image):
    image = reference_image("inference")
    result = _model_check(image)
    assert result["outcome"] == "passed", result
    assert "demo-model on 8000: GET /health → 200" in result["message"], result["message"]
    failed = {k: v["message"] for k, v in result["_all"].items() if v["outcome"] not in ("passed", "skipped")}
    assert not failed and result["_rc"] == 0, failed


def test_cmd_variant_uses_the_image_cmd(reference_image):
    """The `cmd` variant ignores the folder's definition: port 8000, the image's CMD, no health check."""
    result = _model_check(reference_image("inference"), "--runtime-variant", "cmd")
    assert result["outcome"] == "passed", result
    assert "image-model on 8000: GET / →" in result["message"] and "variant cmd" in result["message"], result["message"]
