"""The installed wheel works with no checkout anywhere: built, installed into a fresh venv, and used
from an empty directory (init, validate, build --dry-run, krunner package --help)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(900)


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, f"{argv}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def test_wheel_in_a_fresh_venv(tmp_path):
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", "-w", str(dist),
          str(REPO)], tmp_path)
    (wheel,) = dist.glob("bai_kernel_toolkit-*.whl")
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)], tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BAI_IMAGEKIT_SERVICE_DEFS")}
    cli = str(venv / "bin" / "bai-imagekit")
    _run([cli, "init", "mykernel", "--runtime", "python", "--service", "jupyterlab"], work, env)
    assert (work / "mykernel" / "service-defs" / "hello.json").is_file()
    validated = subprocess.run([cli, "validate", "mykernel", "--format", "json"], cwd=work, capture_output=True,
                               text=True, timeout=120, env=env)
    assert validated.returncode == 0, validated.stdout[-2000:] + validated.stderr[-2000:]
    planned = json.loads(_run([cli, "build", "mykernel", "--dry-run", "--format", "json"], work, env).stdout)
    assert "jupyterlab" in planned["service_defs"]  # the library came from the wheel, not a checkout
    assert "/share/bai-imagekit/service-defs/" in planned["service_defs"]["jupyterlab"]
    _run([cli, "krunner", "package", "--help"], work, env)
    _run([str(venv / "bin" / "krunner"), "--version"], work, env)
