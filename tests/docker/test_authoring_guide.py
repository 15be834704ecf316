"""docs/authoring.md cannot rot: every ```sh block of the guide runs, in order, in one shell.

The blocks run with bash (``set -euo pipefail``) in a scratch directory that has the repository's
``images/`` beside it, with ``bai-imagekit`` on PATH and ``BASE_IMAGE`` set to the local base image
(there is no registry here; the guide defaults it only when unset). The JSON block of the guide
must be the scaffold's real ``hello.json``.
"""

from __future__ import annotations

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


def test_guide_commands_run(localenv, tmp_path):
    from imagekit.localenv.base_image import ensure_base_image

    script = "\n".join(_blocks("sh"))
    assert "bai-imagekit init" in script and "bai-imagekit test" in script
    (tmp_path / "images").symlink_to(REPO / "images")
    env = {**os.environ, "BASE_IMAGE": ensure_base_image(), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "NO_COLOR": "1"}
    try:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=1100)
        assert out.returncode == 0, f"stdout:\n{out.stdout[-5000:]}\nstderr:\n{out.stderr[-5000:]}"
        scaffold_def = json.loads((tmp_path / "mykernel" / "service-defs" / "hello.json").read_text())
        (shown,) = _blocks("json")
        assert json.loads(shown) == scaffold_def, "the guide's hello.json differs from what init writes"
        assert "hello: started" in out.stdout
        assert "== my/kernel:dev: passed" in out.stdout and "== my/inference:dev: passed" in out.stdout
    finally:
        client = docker.from_env()
        for tag in TAGS:
            try:
                client.images.remove(tag, force=True)
            except docker.errors.ImageNotFound:
                pass
