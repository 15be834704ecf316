"""Helpers of the CI-integration tests: a scratch git repository holding kernel directories made by
``bai-imagekit init`` (one good, one broken), the way an image author's repository looks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagekit.localenv.checkout import REPO_ROOT as REPO
from tests.directory_fixtures import mark_directory

#: per-test bound unless a module sets its own (a pip install of the toolkit takes about a minute)
TIMEOUT_SECONDS = 900


def pytest_collection_modifyitems(config, items):
    mark_directory(items, Path(__file__).parent, ("install",), TIMEOUT_SECONDS)
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@127.0.0.1", "GIT_COMMITTER_NAME": "t",
          "GIT_COMMITTER_EMAIL": "t@127.0.0.1"}


def git(cwd: Path, *argv: str) -> None:
    subprocess.run(["git", *argv], cwd=cwd, check=True, capture_output=True, timeout=60, env={**os.environ, **GIT_ID})


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> Path:
    """A directory with ``good/`` (validates clean: one info) and ``bad/`` (BAI201: a service without its def)."""
    root = tmp_path_factory.mktemp("kernels")
    subprocess.run([sys.executable, "-m", "imagekit.cli", "init", "good", "--runtime", "python"], cwd=root, check=True,
                   capture_output=True, timeout=120)
    shutil.copytree(root / "good", root / "bad")
    (root / "bad" / "service-defs" / "hello.json").unlink()
    return root


@pytest.fixture
def author_repo(kernels, tmp_path) -> Path:
    """A scratch git repository (one commit) with the two kernel dirs and a README."""
    repo = tmp_path / "author"
    shutil.copytree(kernels, repo)
    (repo / "README.md").write_text("an image author's repository\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "kernels")
    return repo
