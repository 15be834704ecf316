"""docs/krunner-volume.md, "Installing into a Backend.AI agent": every ```sh block runs, in order.

``AGENT_PYTHON`` is the test's agent venv (the stock agent from PyPI). Step 4 needs a running
kernel: the agent driver keeps one alive (a ``sleep`` step) while that block runs. The test leaves
our package installed again, whatever the guide's roll-back step did.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.agent, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "krunner-volume.md"
SECTION = "## Installing into a Backend.AI agent"
BLOCK = re.compile(r"^ *```sh\n(.*?)^ *```", re.MULTILINE | re.DOTALL)


def guide_blocks() -> list[str]:
    text = GUIDE.read_text()
    section = text[text.index(SECTION):]
    section = section[: section.find("\n## ", 1)]
    return [re.sub(r"^ {3}", "", body, flags=re.MULTILINE) for body in BLOCK.findall(section)]


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{script}\nstdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-5000:]}"
    return out


def _wait_for_kernel(client: docker.DockerClient, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = client.containers.list(filters={"label": "ai.backend.kernel-id"})
        if running:
            return running[0].id
        time.sleep(0.5)
    raise AssertionError("the agent driver started no kernel container")


def test_operator_guide(stock_agent, reference_image, tmp_path):
    from imagekit.localenv.agent_venv import DRIVER, use_krunner_package

    blocks = guide_blocks()
    assert len(blocks) == 5, "the guide's five steps"
    env = {**os.environ, "AGENT_PYTHON": str(stock_agent.python), "NO_COLOR": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    client = docker.from_env()
    assert not client.containers.list(filters={"label": "ai.backend.kernel-id"}), "no kernel may run before"
    try:
        built = _bash(blocks[0], tmp_path, env)
        (wheel,) = (tmp_path / "dist").glob("backend_ai_krunner_static_gnu-*.whl")
        assert wheel.name == stock_agent.wheel.name, "the guide builds the package the tests use"
        assert str(wheel.name) in built.stdout
        _bash(blocks[1], tmp_path, env)
        prepared = _bash(blocks[2], tmp_path, env)
        assert prepared.stdout.splitlines()[0] == stock_agent.volume
        assert stock_agent.volume in prepared.stdout.splitlines()[-1] or stock_agent.volume in prepared.stdout

        keep_alive = subprocess.Popen(
            [str(stock_agent.python), str(DRIVER), "run", "--image", reference_image("python-minimal"),
             "--krunner-volumes", json.dumps(stock_agent.volumes), "--kernel-uid", "1000", "--kernel-gid", "1000",
             "--steps", json.dumps([{"op": "sleep", "seconds": 45}])],
            cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_kernel(client)
            time.sleep(3)  # the entrypoint has exec'd the runner
            verified = _bash(blocks[3], tmp_path, env)
            version = stock_agent.volume.split(".")[1].removeprefix("v")
            assert verified.stdout.splitlines() == ["krunner 0.1.0", version], verified.stdout
        finally:
            out, err = keep_alive.communicate(timeout=300)
        assert json.loads(out)["ok"], err[-3000:]

        rolled_back = _bash(blocks[4], tmp_path, env)
        assert "Version: 4.4.0" in rolled_back.stdout
    finally:
        use_krunner_package(stock_agent.python, stock_agent.wheel)
