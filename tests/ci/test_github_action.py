"""The composite GitHub Action (``action.yml``) run step by step the way the runner runs it
(:mod:`.action_runner`), in a scratch git repository holding kernel directories.

The action directory is a copy of this checkout's files, as ``uses: OWNER/REPO@REF`` gets them; its
install step really creates a venv and pip-installs the toolkit from it (once for the module: the
later runs skip that step and reuse its output).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.wheel_venv import _source_copy

from .action_runner import ActionRun, CompositeAction
from .conftest import REPO

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def action(tmp_path_factory) -> CompositeAction:
    return CompositeAction(_source_copy(tmp_path_factory.mktemp("action")))


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runner-temp")


@pytest.fixture(scope="module")
def installed(action, runner_temp, kernels, tmp_path_factory) -> tuple[dict[str, str], ActionRun]:
    """The first run, install step included: (the install step's outputs, the run on ``good``)."""
    import shutil

    workspace = tmp_path_factory.mktemp("ws")
    shutil.copytree(kernels, workspace, dirs_exist_ok=True)
    result = action.run(workspace, runner_temp, {"targets": "good"}, env={"NO_COLOR": "1"})
    assert result.steps_run[0] == "install", result.steps_run
    assert result.exit_code == 0, result.stdout
    return {"install": result.step_outputs["install"]}, result


def run_action(action, runner_temp, installed, workspace: Path, **inputs: str) -> ActionRun:
    skip, _ = installed
    return action.run(workspace, runner_temp, inputs, env={"NO_COLOR": "1"}, skip=skip)


def sarif_results(path: Path) -> list[dict]:
    """The results of a SARIF 2.1.0 log, after checking the shape code scanning requires."""
    doc = json.loads(path.read_text())
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "bai-imagekit" and driver["informationUri"].startswith("https://")
    ids = [r["id"] for r in driver["rules"]]
    for res in run["results"]:
        assert ids[res["ruleIndex"]] == res["ruleId"] and res["level"] in ("error", "warning", "note")
        (loc,) = res["locations"]
        uri = loc["physicalLocation"]["artifactLocation"]["uri"]
        assert not uri.startswith("/") and ".." not in uri  # relative to the repository root
    return run["results"]


def test_the_action_is_a_complete_composite_action(action):
    doc = action.doc
    for name, spec in doc["inputs"].items():
        assert spec.get("description"), name
    step_ids = {s.get("id") for s in doc["runs"]["steps"]}
    for name, spec in doc["outputs"].items():
        assert spec["value"].startswith("${{ steps.") and spec["value"].split(".")[1] in step_ids, name
    assert (REPO / "action.yml").read_text() == (action.dir / "action.yml").read_text()


def test_a_good_kernel_passes_with_a_sarif_report(installed, author_repo):
    _, result = installed
    assert result.outputs["exit-code"] == "0"
    assert result.outputs["sarif-file"] == "bai-imagekit.sarif"
    assert result.outputs["image"] == "" and result.outputs["junit-file"] == ""  # build: false
    assert result.steps_run == ["install", "validate", "build", "test", "__4"]
    assert "::notice file=good/kernel.toml,title=BAI031::" in result.stdout
    assert "bai-imagekit 0.1.0" in result.stdout  # the install step's --version
    assert "### bai-imagekit validate" in result.summary and "good: 0 errors, 0 warnings, 1 info (exit code 0)" in result.summary


def test_a_broken_kernel_fails_with_annotations_and_sarif(action, runner_temp, installed, author_repo):
    result = run_action(action, runner_temp, installed, author_repo, targets="good bad")
    assert result.exit_code == 1 and result.failed_step == "__4", result.stdout
    assert result.outputs["exit-code"] == "1"
    assert "::error file=bad/kernel.toml,line=13,title=BAI201::service 'hello' has no service-defs/hello.json" in result.stdout
    assert "::error title=bai-imagekit::bai-imagekit validate exited 1" in result.stdout
    results = sarif_results(author_repo / result.outputs["sarif-file"])
    (error,) = [r for r in results if r["level"] == "error"]
    assert error["ruleId"] == "BAI201"
    where = error["locations"][0]["physicalLocation"]
    assert where["artifactLocation"]["uri"] == "bad/kernel.toml" and where["region"]["startLine"] == 13
    assert "not building" not in result.stdout  # build: false: the build step says nothing


def test_inputs_and_the_config_file(action, runner_temp, installed, author_repo):
    """The repository's .bai-imagekit.toml applies; the action's inputs (flags) win over it."""
    (author_repo / ".bai-imagekit.toml").write_text('fail-on = "info"\n')
    strict = run_action(action, runner_temp, installed, author_repo, targets="good", annotations="false",
                        **{"sarif-file": ""})
    assert strict.exit_code == 1 and strict.outputs["exit-code"] == "1"
    assert "good/kernel.toml: info BAI031:" in strict.stdout and "::notice" not in strict.stdout  # text, not annotations
    assert strict.outputs["sarif-file"] == "" and not (author_repo / "bai-imagekit.sarif").exists()

    lenient = run_action(action, runner_temp, installed, author_repo, targets="good", **{"fail-on": "error"})
    assert lenient.exit_code == 0 and lenient.outputs["exit-code"] == "0", lenient.stdout

    (author_repo / ".bai-imagekit.toml").write_text('[rules.disabled]\nBAI201 = "the def comes from the library"\n')
    both = run_action(action, runner_temp, installed, author_repo, targets="*/")  # a glob: good/ and bad/
    assert both.exit_code == 0, both.stdout  # bad/'s BAI201 is disabled by the file
    assert "file=bad/kernel.toml,title=BAI031" in both.stdout and "BAI201" not in both.stdout

    (author_repo / "ci.toml").write_text("[rules.severity]\nBAI031 = \"error\"\n")
    chosen = run_action(action, runner_temp, installed, author_repo, targets="good", config="ci.toml")
    assert chosen.exit_code == 1 and "::error file=good/kernel.toml,title=BAI031::" in chosen.stdout


def test_a_broken_config_file_is_exit_2(action, runner_temp, installed, author_repo):
    (author_repo / ".bai-imagekit.toml").write_text("fail-on = \"error\"\nfial-on = 1\n")
    result = run_action(action, runner_temp, installed, author_repo, targets="good")
    assert result.exit_code == 2 and result.outputs["exit-code"] == "2"
    assert ".bai-imagekit.toml:2: error: unknown key 'fial-on'" in result.stdout
