"""docs/ci.md cannot rot: its workflow uses the action's real inputs and outputs, and its validate
job's action step runs (:mod:`.action_runner`) on a repository made by the guide's ```sh blocks,
which run in order in one shell (the install line included: a venv and pip, as the action does);
its pre-commit configuration runs with the real pre-commit against this checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.wheel_venv import _source_copy

from .action_runner import EXPR, CompositeAction
from .conftest import git
from .guides import REPO, blocks, run_sh_blocks

pytestmark = pytest.mark.timeout(900)
ACTION_REF = re.compile(r"^OWNER/bai-kernel-toolkit@REF$")


def workflow() -> dict:
    (text,) = [b for b in blocks("ci.md", "yaml") if "jobs:" in b]
    return yaml.safe_load(text)


def action_steps(doc: dict) -> list[tuple[str, dict, list[dict]]]:
    return [(job, step, spec["steps"]) for job, spec in doc["jobs"].items() for step in spec["steps"]
            if ACTION_REF.match(step.get("uses", ""))]


def test_the_workflow_uses_the_actions_inputs_and_outputs():
    action = yaml.safe_load((REPO / "action.yml").read_text())
    doc = workflow()
    steps = action_steps(doc)
    assert [job for job, _, _ in steps] == ["validate", "image"]
    for job, step, all_steps in steps:
        assert set(step.get("with", {})) <= set(action["inputs"]), job
        later = all_steps[all_steps.index(step) + 1:]
        for other in later:
            for expr in EXPR.findall(json.dumps(other)):
                for ref in re.findall(rf"steps\.{step['id']}\.outputs\.([\w-]+)", expr):
                    assert ref in action["outputs"], (job, ref)
    assert doc["jobs"]["validate"]["permissions"]["security-events"] == "write"


def test_the_guide_and_its_workflow_run(tmp_path: Path):
    (tmp_path / "action-src").mkdir()
    action_dir = _source_copy(tmp_path / "action-src")  # what `uses: OWNER/bai-kernel-toolkit@REF` checks out
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    work = tmp_path / "repo"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    env = {"GITHUB_ACTION_PATH": str(action_dir), "RUNNER_TEMP": str(runner_temp), "VIRTUAL_ENV": ""}
    out = run_sh_blocks("ci.md", work, env)
    assert "bai-imagekit" in out.stdout and "0 errors, 0 warnings, 1 info" in out.stdout
    assert "::notice file=kernels/python/kernel.toml,title=BAI031::" in out.stdout
    assert json.loads((work / "bai-imagekit.sarif").read_text())["version"] == "2.1.0"

    # the validate job's step, on that repository, with the venv the guide's install line made
    venv = runner_temp / "bai-imagekit-venv" / "bin"
    (_, step, _), _ = action_steps(workflow())
    (work / "bai-imagekit.sarif").unlink()
    result = CompositeAction(action_dir).run(
        work, runner_temp, {k: str(v) for k, v in step["with"].items()}, env={"NO_COLOR": "1"},
        skip={"install": {"bai-imagekit": str(venv / "bai-imagekit"), "python": str(venv / "python")}})
    assert result.exit_code == 0, result.stdout
    assert result.outputs["sarif-file"] == "bai-imagekit.sarif" and (work / "bai-imagekit.sarif").is_file()
    assert "::notice file=kernels/python/kernel.toml,title=BAI031::" in result.stdout


def test_the_pre_commit_configuration_runs(tmp_path: Path):
    (config,) = [yaml.safe_load(b) for b in blocks("ci.md", "yaml") if "repos:" in b]
    (repo,) = config["repos"]
    assert [h["id"] for h in repo["hooks"]] == ["bai-imagekit-validate"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    repo.update(repo=str(REPO), rev=head)  # this checkout at its last commit stands in for OWNER/…@REF
    work = tmp_path / "author"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "imagekit.cli", "init", "kernels/python", "--runtime", "python"], cwd=work,
                   check=True, capture_output=True, timeout=120)
    (work / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    pre_commit = [str(Path(sys.executable).parent / "pre-commit")]
    ok = subprocess.run([*pre_commit, "run", "--all-files", "--color", "never"], cwd=work, env=env,
                        capture_output=True, text=True, timeout=800)
    assert ok.returncode == 0 and "bai-imagekit validate" in ok.stdout and "Passed" in ok.stdout, ok.stdout + ok.stderr
    (work / "kernels" / "python" / "service-defs" / "hello.json").unlink()
    bad = subprocess.run([*pre_commit, "run", "--all-files", "--color", "never"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=800)
    assert bad.returncode == 1 and "error BAI201" in bad.stdout, bad.stdout + bad.stderr


def test_the_testing_guide_uses_the_action():
    text = (REPO / "docs" / "testing-images.md").read_text()
    assert "example.invalid" not in text
    action = yaml.safe_load((REPO / "action.yml").read_text())
    (snippet,) = [yaml.safe_load(b) for b in re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
                  if "bai-kernel-toolkit@" in b]
    (step,) = [s for s in snippet if ACTION_REF.match(s.get("uses", ""))]
    assert set(step["with"]) <= set(action["inputs"])
