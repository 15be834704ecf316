"""``bai-imagekit test --runner stock``: the smoke test with upstream's runner as a stock agent deploys it.

``krunner install --stock`` fetches upstream's packages from PyPI and creates the v14 volume; the
python and app-shell reference images pass on it, nodejs fails and says why (BAI030: the stock
runner has no nodejs REPL and exits at once).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imagekit.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stock_runner(localenv):
    out = _cli("krunner", "install", "--stock")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "backendai-krunner.v14.x86_64.static-gnu"
    return out.stdout.strip()


def _report(*images: str, extra: tuple[str, ...] = ()) -> tuple[int, dict]:
    out = _cli("test", *images, "--runner", "stock", "--format", "json", "-q", *extra)
    return out.returncode, json.loads(out.stdout)


def _checks(image_report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in image_report["results"]}


def test_python_and_app_shell_pass_on_the_stock_runner(stock_runner, reference_image):
    code, report = _report(reference_image("python"), reference_image("app-shell"))
    failed = {img["image"]: [c for c in img["results"] if c["outcome"] not in ("passed", "skipped")]
              for img in report["images"]}
    assert code == 0, failed
    python = _checks(report["images"][0])
    assert python["labels"]["title"] == "label validation (stock runner)"
    assert "stock runner" in python["query.rich"]["message"]
    assert python["query.completion"]["outcome"] == "skipped"  # upstream's completion is not implemented
    assert python["query.output"]["outcome"] == "passed" and python["intrinsic.webterm"]["outcome"] == "passed"


def test_nodejs_fails_on_the_stock_runner_and_says_why(stock_runner, reference_image):
    code, report = _report(reference_image("nodejs"), extra=("--ready-timeout", "15"))
    assert code == 1
    checks = _checks(report["images"][0])
    assert checks["labels"]["outcome"] == "failed"
    assert "BAI030" in checks["labels"]["message"] and "stock runner" in checks["labels"]["message"]


def test_missing_stock_runner_is_an_environment_error(tmp_path, monkeypatch, localenv):
    import os

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "imagekit.cli", "test", "bai-test/python:latest", "--runner", "stock"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and "bai-imagekit krunner install --stock" in out.stderr
