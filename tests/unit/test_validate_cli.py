"""``bai-imagekit validate`` as a subprocess on the Dockerfile corpus, kernel dirs and label dumps.

Every bad case in ``tests/corpus/dockerfiles`` states what it must produce in its first lines:
``# expect: BAI501@5`` (rule at that line; without ``@line`` the finding has no line) and
``# expect-not: BAI101`` (that rule must not fire, e.g. because it is suppressed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "corpus" / "dockerfiles"
_EXPECT = re.compile(r"^#\s*expect(-not)?:\s*(BAI\d{3})(?:@(\d+))?\s*$")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "imagekit.cli", "validate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=60,
    )


def run_json(*args: str) -> tuple[int, dict]:
    out = run(*args, "--format", "json")
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def expectations(path: Path) -> tuple[set[tuple[str, int | None]], set[str]]:
    want, never = set(), set()
    for line in path.read_text().splitlines():
        m = _EXPECT.match(line)
        if m:
            if m.group(1):
                never.add(m.group(2))
            else:
                want.add((m.group(2), int(m.group(3)) if m.group(3) else None))
    return want, never


BAD = sorted(
    p for p in [*CORPUS.glob("*.Dockerfile"), *(d / "Dockerfile" for d in CORPUS.iterdir() if d.is_dir())] if expectations(p)[0]
)


def test_the_corpus_has_bad_cases():
    assert len(BAD) >= 8


@pytest.mark.parametrize("path", BAD, ids=[p.relative_to(CORPUS).as_posix() for p in BAD])
def test_bad_dockerfiles_report_their_rule_and_line(path: Path):
    want, never = expectations(path)
    target = path.parent if path.name == "Dockerfile" else path
    code, doc = run_json(str(target.relative_to(REPO)))
    got = {(f["rule"], f["location"]["line"]) for f in doc["findings"]}
    assert want <= got, doc["findings"]
    assert not never & {rule for rule, _ in got}
    assert code == (1 if doc["counts"]["error"] else 0)
    for f in doc["findings"]:
        assert f["location"]["file"].startswith("tests/corpus/dockerfiles/")


@pytest.mark.parametrize("target", ["tests/corpus/dockerfiles/good", "tests/corpus/dockerfiles/good/Dockerfile"])
def test_good_kernel_dir_and_dockerfile_are_clean(target):
    code, doc = run_json(target, "--fail-on", "info")
    assert (code, doc["findings"]) == (0, [])
    assert doc["counts"] == {"error": 0, "warning": 0, "info": 0}


def test_label_dumps():
    code, doc = run_json("tests/corpus/dockerfiles/labels-good.json", "--fail-on", "info")
    assert (code, doc["findings"]) == (0, [])
    code, doc = run_json("tests/corpus/dockerfiles/inspect-bad.json")
    assert code == 1
    assert ("BAI103", 10) in {(f["rule"], f["location"]["line"]) for f in doc["findings"]}


def test_fail_on_threshold(tmp_path: Path):
    dump = tmp_path / "labels.json"
    dump.write_text(json.dumps({"ai.backend.kernelspec": "1", "ai.backend.runtime-type": "app", "ai.backend.features": "uid-match"}))
    code, doc = run_json(str(dump))
    assert doc["counts"]["error"] == 0 and doc["counts"]["warning"] > 0
    assert code == 0
    assert run(str(dump), "--fail-on", "warning").returncode == 1
    unresolved = "tests/corpus/dockerfiles/unresolved-variable.Dockerfile"
    assert run(unresolved, "--fail-on", "info").returncode == 1


def test_several_targets_in_one_report():
    code, doc = run_json("tests/corpus/dockerfiles/good", "tests/corpus/dockerfiles/inspect-bad.json")
    assert code == 1
    assert doc["targets"] == ["tests/corpus/dockerfiles/good", "tests/corpus/dockerfiles/inspect-bad.json"]
    assert {f["target"] for f in doc["findings"]} == {"tests/corpus/dockerfiles/inspect-bad.json"}


def test_text_output_and_colour():
    path = "tests/corpus/dockerfiles/bad-label-syntax.Dockerfile"
    plain = run(path)
    assert plain.returncode == 1
    assert f"{path}:5: error BAI501: " in plain.stdout
    assert "\n    hint: " in plain.stdout
    assert re.search(r"^\d+ errors?, \d+ warnings?, \d+ info$", plain.stdout.splitlines()[-1])
    assert "\033[" not in plain.stdout  # a pipe is not a terminal
    assert "\033[31m" in run(path, env={"FORCE_COLOR": "1"}).stdout
    assert "\033[" not in run(path, env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout


def test_github_and_sarif_to_a_file(tmp_path: Path):
    path = "tests/corpus/dockerfiles/bad-service-ports.Dockerfile"
    gh = run(path, "--format", "github")
    assert f"::error file={path},line=6,title=BAI101::" in gh.stdout
    out = tmp_path / "report.sarif"
    res = run(path, "--format", "sarif", "-o", str(out))
    assert res.returncode == 1 and res.stdout == ""
    sarif = json.loads(out.read_text())
    results = sarif["runs"][0]["results"]
    assert {"ruleId": "BAI101", "line": 6} in [
        {"ruleId": r["ruleId"], "line": r["locations"][0]["physicalLocation"]["region"]["startLine"]} for r in results
    ]


def test_help_has_examples():
    out = subprocess.run([sys.executable, "-m", "imagekit.cli", "validate", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "examples:" in out.stdout and "--fail-on" in out.stdout and "# bai-imagekit ignore=" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["./no/such/Dockerfile"], "no such file"),
        (["missing.json"], "no such file"),
        (["--target-kind", "dockerfile", "nope"], "no such file"),
        (["--target-kind", "kernel-dir", "tests/corpus/dockerfiles/good/Dockerfile"], "no such directory"),
        (["--format", "xml", "tests/corpus/dockerfiles/good"], "invalid choice"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2(args, message):
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr


def test_bad_json_and_empty_kernel_dir_exit_2(tmp_path: Path):
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2")
    out = run(str(bad))
    assert out.returncode == 2 and "is not JSON" in out.stderr
    empty = tmp_path / "kernel"
    empty.mkdir()
    out = run(str(empty))
    assert out.returncode == 2 and "neither a Dockerfile nor kernel.toml" in out.stderr


def test_unreachable_engine_exits_2():
    # loopback only: nothing listens on port 9 (discard) here
    out = run("example/image:1.0", env={"DOCKER_HOST": "tcp://127.0.0.1:9"})
    assert out.returncode == 2
    assert "cannot reach the Docker engine at tcp://127.0.0.1:9" in out.stderr
