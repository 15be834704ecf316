"""The action's build-and-test path (``build: "true"``) on a real engine: the scratch repository's
kernel directory is built (its base image from the repository's ``.bai-imagekit.toml``
``[build-args]``: nothing is pulled), smoke-tested, and the JUnit report is written. The krunner
bundle comes from the session's fixture (``install-runner: "false"``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest

from tests.wheel_venv import _source_copy

from .action_runner import CompositeAction

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]
TAG = "bai-imagekit-ci/action-build:test"


def test_build_and_smoke_test_through_the_action(localenv, krunner_bundle, author_repo, tmp_path: Path):
    from imagekit.localenv.base_image import ensure_base_image

    (author_repo / ".bai-imagekit.toml").write_text(f'[build-args]\nBASE_IMAGE = "{ensure_base_image()}"\n')
    (tmp_path / "action").mkdir()
    action = CompositeAction(_source_copy(tmp_path / "action"))
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    try:
        result = action.run(author_repo, runner_temp, {
            "targets": "good", "build": "true", "tag": TAG, "junit-file": "smoke.xml", "install-runner": "false",
            "sarif-file": "",
        }, env={"NO_COLOR": "1"}, timeout=1500)
        assert result.exit_code == 0, result.stdout[-6000:]
        assert result.outputs["image"] == TAG and result.outputs["test-exit-code"] == "0"
        assert result.outputs["junit-file"] == "smoke.xml"
        suite = ET.parse(author_repo / "smoke.xml").getroot()
        cases = suite.findall(".//testcase")
        assert cases and not suite.findall(".//failure") and not suite.findall(".//error")
        assert f"bai-imagekit test {TAG}: exit code 0" in result.summary

        broken = action.run(author_repo, runner_temp, {"targets": "bad", "build": "true", "tag": TAG},
                            env={"NO_COLOR": "1"}, skip={"install": result.step_outputs["install"]})
        assert broken.exit_code == 1 and "not building: validation failed" in broken.stdout
        assert broken.outputs["image"] == "" and broken.outputs["test-exit-code"] == ""
    finally:
        try:
            docker.from_env().images.remove(TAG, force=True)
        except docker.errors.ImageNotFound:
            pass
