"""docs/authoring.md cannot rot: every ```sh block of the guide runs, in order, in one shell.

The blocks run with bash (``set -euo pipefail``) in a scratch directory that has the repository's
``images/`` beside it, with ``bai-imagekit`` on PATH and ``BASE_IMAGE`` set to the local base image
(no public registry here; the guide defaults it only when unset). ``REGISTRY`` is a local TLS +
basic-auth registry (:mod:`imagekit.localenv.registry`), its credentials in ``DOCKER_CONFIG`` and
its CA in ``SSL_CERT_FILE``, so the push section runs as a reader would run it. The JSON block of
the guide must be the scaffold's real ``hello.json``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import docker
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "authoring.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
TAGS = ("my/kernel:dev", "my/inference:dev")


def _blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(GUIDE.read_text()) if kind == lang]


def test_guide_commands_run(localenv, krunner_bundle, tmp_path):
    from imagekit.localenv.base_image import ensure_base_image
    from imagekit.localenv.registry import ensure_registry, stop_registry

    script = "\n".join(_blocks("sh"))
    assert "bai-imagekit init" in script and "bai-imagekit test" in script and "--push" in script
    (tmp_path / "images").symlink_to(REPO / "images")
    registry = ensure_registry("tls", tmp_path / "registry")
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {registry.address: {"auth": token}}}))
    env = {**os.environ, "BASE_IMAGE": ensure_base_image(), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "NO_COLOR": "1", "REGISTRY": f"{registry.address}/my-project", "DOCKER_CONFIG": str(docker_config),
           "SSL_CERT_FILE": str(registry.ca_cert)}
    pushed = [f"{registry.address}/my-project/kernel:{tag}" for tag in ("1.0", "latest")]
    try:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=1100)
        assert out.returncode == 0, f"stdout:\n{out.stdout[-5000:]}\nstderr:\n{out.stderr[-5000:]}"
        scaffold_def = json.loads((tmp_path / "mykernel" / "service-defs" / "hello.json").read_text())
        (shown,) = _blocks("json")
        assert json.loads(shown) == scaffold_def, "the guide's hello.json differs from what init writes"
        assert "hello: started" in out.stdout
        assert "== my/kernel:dev: passed" in out.stdout and "== my/inference:dev: passed" in out.stdout
        assert all(f"pushed {ref} (sha256:" in out.stdout for ref in pushed), out.stdout[-3000:]
    finally:
        stop_registry(registry)
        client = docker.from_env()
        for tag in (*TAGS, *pushed):
            try:
                client.images.remove(tag, force=True)
            except docker.errors.ImageNotFound:
                pass
