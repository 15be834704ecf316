"""``bai-imagekit init --from IMAGE DIR`` adopts a plain, unlabelled image; the result builds and passes ``test``.

The image (tests/images/adoptable) is built locally from the debootstrap base: Debian's python3,
busybox (whose httpd applet the library's static-files def runs), a non-root USER, an entrypoint
that never execs "$@", and no ai.backend.* label.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound, NotFound

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "imagekit.cli"]
SOURCE = "bai-test/adoptable:latest"


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BAI_IMAGEKIT_CA_BUNDLE", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def adoptable(localenv):
    from imagekit.localenv.base_image import ensure_base_image
    from imagekit.localenv.images import ensure_image

    return ensure_image(REPO / "tests" / "images" / "adoptable", SOURCE, ensure_base_image())


def test_survey_of_a_missing_image_is_an_environment_error(localenv, tmp_path):
    out = _cli("init", "--from", "bai-test/no-such-image:nope", str(tmp_path / "k"))
    assert out.returncode == 2
    assert "bai-test/no-such-image:nope is not on the local Docker engine" in out.stderr
    assert not (tmp_path / "k").exists()


def test_adopt_build_and_test(adoptable, krunner_bundle, tmp_path):
    client = docker.from_env(timeout=600)
    own = ("ai.backend.imagekit.",)  # the local build's own bookkeeping labels, not kernel labels
    assert not [k for k in client.images.get(SOURCE).labels or {} if k.startswith("ai.backend.") and not k.startswith(own)]

    # the survey alone (no DIR), as JSON
    out = _cli("init", "--from", SOURCE, "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    survey, choices = data["survey"], data["choices"]
    assert survey["distro"]["os_release"] == "debian12" and survey["distro"]["libc"] == "glibc"
    assert survey["distro"]["agent_distro"] == "ubuntu22.04"  # glibc 2.36 -> the nearest lower known one
    assert "ldd --version" in survey["distro"]["agent_probe"]
    python = survey["pythons"][0]
    assert python["path"] == "/usr/bin/python3", survey["pythons"]
    assert python["real_path"] == "/usr/bin/python3.11" and python["version"] == "3.11"
    assert survey["conda"] == [] and survey["cuda"] is None
    assert survey["config"]["entrypoint"] == ["/usr/local/bin/start-app"] and survey["config"]["cmd"] == ["--serve"]
    assert survey["config"]["entrypoint_chains"] is False and survey["config"]["user"] == "appuser"
    assert {"name": "appuser", "uid": 1001, "gid": 1001, "home": "/home/appuser", "shell": "/bin/bash"} in survey["users"]
    assert [a["service"] for a in survey["apps"]] == ["static-files"]
    assert survey["backend_labels"] == {} and data["written"] == []
    topics = {(n["severity"], n["topic"]) for n in survey["notes"]}
    assert {("warning", "entrypoint"), ("warning", "user"), ("info", "entrypoint")} <= topics
    assert choices == {"runtime-type": "python", "runtime-path": "/usr/bin/python3", "base-distro": "ubuntu22.04",
                       "services": ["static-files"]}

    # the files, with a comment per choice
    kdir = tmp_path / "adopted"
    out = _cli("init", "--from", SOURCE, str(kdir))
    assert out.returncode == 0, out.stderr
    assert "static-files" in out.stdout and "Adopted" in out.stdout
    toml_text = (kdir / "kernel.toml").read_text()
    spec = tomllib.loads(toml_text)
    assert spec["kernel"]["runtime-type"] == "python" and spec["kernel"]["runtime-path"] == "/usr/bin/python3"
    assert spec["kernel"]["base-distro"] == "ubuntu22.04"
    assert spec["services"] == {"static-files": {"library": True}}
    assert "# python: /usr/bin/python3 -> /usr/bin/python3.11 (3.11) in the image's PATH found; chosen because" in toml_text
    assert "# distro: /etc/os-release says debian12" in toml_text and "debian is not a family" in toml_text
    assert "busybox has the httpd applet -> the library's static-files def (port 8082)" in toml_text
    dockerfile = (kdir / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={SOURCE}\nFROM ${{BASE_IMAGE}}\n" in dockerfile
    assert "USER root" in dockerfile and 'does not exec "$@"' in dockerfile
    again = _cli("init", "--from", SOURCE, str(kdir))
    assert again.returncode == 2 and "--force" in again.stderr

    # the result builds (labels from kernel.toml) and passes the smoke test
    tag = f"bai-test/adopted:{uuid.uuid4().hex[:8]}"
    try:
        out = _cli("build", str(kdir), "-t", tag, "--format", "json")
        assert out.returncode == 0, out.stderr[-4000:]
        labels = client.images.get(tag).labels
        assert labels["ai.backend.runtime-path"] == "/usr/bin/python3"
        assert labels["ai.backend.service-ports"] == "static-files:http:8082"
        out = _cli("test", tag, "--format", "json", "-q")
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
        body = json.loads(out.stdout)
        assert body["passed"] is True
        (report,) = body["images"]
        ids = {r["id"]: r["outcome"] for r in report["results"]}
        assert ids.get("service.static-files") == "passed", ids
    finally:
        try:
            client.images.remove(tag, force=True)
        except (ImageNotFound, NotFound):
            pass
        client.close()
