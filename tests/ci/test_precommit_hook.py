"""The pre-commit hook (``.pre-commit-hooks.yaml``) run by the real ``pre-commit`` through
``pre-commit try-repo`` on a scratch repository: it builds the hook's venv from this checkout (pip,
from PyPI) like a user's ``pre-commit install`` would, then validates the changed kernel dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

pytestmark = pytest.mark.timeout(900)
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"


def try_repo(repo: Path, home: Path, *files: str) -> subprocess.CompletedProcess:
    if not PRE_COMMIT.exists() and shutil.which("pre-commit") is None:
        pytest.fail("pre-commit is not installed (it is in the test extra: pip install -e '.[test]')")
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1", "PRE_COMMIT_COLOR": "never"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [str(PRE_COMMIT if PRE_COMMIT.exists() else "pre-commit"), "try-repo", str(REPO), "bai-imagekit-validate",
         "--color", "never", "--files", *files],
        cwd=repo, env=env, capture_output=True, text=True, timeout=800)


def test_the_manifest_declares_the_hook():
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "bai-imagekit-validate" and hook["language"] == "python"
    assert hook["entry"] == "bai-imagekit validate --changed"
    import re

    files = re.compile(hook["files"])
    for path in ("k/kernel.toml", "k/Dockerfile", "k/service-defs/app.json", "k/policy.yml", "k/jail-policy.yml",
                 "images/x.Dockerfile", "Containerfile", ".bai-imagekit.toml"):
        assert files.search(path), path
    for path in ("README.md", "k/notes.json", "pyproject.toml", "k/service-defs/sub/x.txt"):
        assert not files.search(path), path


def test_hook_passes_a_good_kernel_and_fails_a_broken_one(author_repo, tmp_path_factory):
    home = tmp_path_factory.mktemp("pre-commit-home")
    good = try_repo(author_repo, home, "good/kernel.toml", "good/service-defs/hello.json", "README.md")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "bai-imagekit validate" in good.stdout and "Passed" in good.stdout

    bad = try_repo(author_repo, home, "bad/kernel.toml", "bad/policy.yml", "good/Dockerfile")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "bad/kernel.toml:13: error BAI201: service 'hello' has no service-defs/hello.json" in bad.stdout
    assert "==> good <==" in bad.stdout and bad.stdout.count("==> bad <==") == 1  # each kernel dir once

    (author_repo / ".bai-imagekit.toml").write_text('[rules.disabled]\nBAI201 = ""\n')
    config = try_repo(author_repo, home, ".bai-imagekit.toml")
    assert config.returncode == 1 and "- exit code: 2" in config.stdout, config.stdout + config.stderr  # the hook's 2
    assert ".bai-imagekit.toml:1: error: rules.disabled: BAI201: a disabled rule needs a reason" in config.stdout
