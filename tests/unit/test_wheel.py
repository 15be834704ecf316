"""The installed wheel works with no checkout anywhere: built, installed into a fresh venv, and used
from an empty directory (init, validate, build --dry-run, the krunner commands' help).

tests/docker/test_wheel_product.py goes on with Docker: krunner build/install, build and test.
"""

from __future__ import annotations

import json

import pytest

from tests.wheel_venv import install_wheel, run, user_env

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]


def test_wheel_in_a_fresh_venv(tmp_path):
    bin_dir = install_wheel(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = user_env(XDG_CACHE_HOME=str(tmp_path / "xdg-cache"))
    cli = str(bin_dir / "bai-imagekit")
    run([cli, "init", "mykernel", "--runtime", "python", "--service", "jupyterlab"], work, env)
    assert (work / "mykernel" / "service-defs" / "hello.json").is_file()
    validated = run([cli, "validate", "mykernel", "--format", "json"], work, env, timeout=120, expect=None)
    assert validated.returncode == 0, validated.stdout[-2000:] + validated.stderr[-2000:]
    planned = json.loads(run([cli, "build", "mykernel", "--dry-run", "--format", "json"], work, env).stdout)
    assert "jupyterlab" in planned["service_defs"]  # the library came from the wheel, not a checkout
    assert "/share/bai-imagekit/service-defs/" in planned["service_defs"]["jupyterlab"]
    for sub in ("build", "install", "package"):
        shown = run([cli, "krunner", sub, "--help"], work, env).stdout
        assert "BAI_IMAGEKIT_BUNDLE_DIR" in " ".join(shown.split()), shown
    assert "--base-image" in run([cli, "krunner", "build", "--help"], work, env).stdout
    # install/package never build: without a bundle they say which command makes one
    out = run([cli, "krunner", "package", "-o", str(tmp_path / "dist-agent")], work, env, expect=2)
    assert "bai-imagekit krunner build" in out.stderr and str(tmp_path / "xdg-cache") in out.stderr, out.stderr
    run([str(bin_dir / "krunner"), "--version"], work, env)
    site = next((bin_dir.parent / "lib").glob("python3*/site-packages"))
    assert not (site / "imagekit" / "bundle" / "build.py").exists()  # no leftovers of in-tree builds
