"""Pure-logic tests for imagekit.localenv / imagekit.harness (no Docker needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from imagekit.harness.container import format_environ_txt, runner_command, short_image_name
from imagekit.harness.krunner_mount import KrunnerMount, KrunnerMountError
from imagekit.localenv.images import context_hash
from imagekit.localenv.krunner_dev import (
    DEV_REQUIREMENTS,
    DEV_SITE_PACKAGES,
    build_script,
    dev_volume_name,
    requirements_hash,
)
from imagekit.localenv.prepare import _parse_names, build_parser
from imagekit.localenv.test_images import TEST_IMAGES


def _make_context(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (root / "sub" / "a.txt").write_text("hello")
    return root


def test_context_hash_is_stable_and_location_independent(tmp_path: Path) -> None:
    a = _make_context(tmp_path / "a")
    b = _make_context(tmp_path / "b")
    assert context_hash(a) == context_hash(a)
    assert context_hash(a) == context_hash(b)
    assert len(context_hash(a)) == 64


def test_context_hash_changes_with_content_names_mode_and_extra(tmp_path: Path) -> None:
    ctx = _make_context(tmp_path / "c")
    base = context_hash(ctx)
    (ctx / "sub" / "a.txt").write_text("hello!")
    changed_content = context_hash(ctx)
    assert changed_content != base
    (ctx / "sub" / "a.txt").chmod(0o755)
    assert context_hash(ctx) != changed_content
    (ctx / "sub" / "a.txt").chmod(0o644)
    assert context_hash(ctx) == changed_content
    (ctx / "sub" / "a.txt").rename(ctx / "sub" / "b.txt")
    assert context_hash(ctx) != changed_content
    assert context_hash(ctx, {"arg:BASE_IMAGE": "x"}) != context_hash(ctx, {"arg:BASE_IMAGE": "y"})


def test_context_hash_ignores_pycache(tmp_path: Path) -> None:
    ctx = _make_context(tmp_path / "p")
    before = context_hash(ctx)
    (ctx / "__pycache__").mkdir()
    (ctx / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert context_hash(ctx) == before


def test_dev_volume_name_depends_on_requirements() -> None:
    name = dev_volume_name()
    assert name == f"bai-krunner-dev.{requirements_hash()}"
    assert len(requirements_hash()) == 8
    assert dev_volume_name(DEV_REQUIREMENTS) == name
    assert dev_volume_name(tuple(reversed(DEV_REQUIREMENTS))) == name  # order-insensitive
    assert dev_volume_name(DEV_REQUIREMENTS + ("six==1.16.0",)) != name


def test_requirements_are_pinned_and_cover_runtime_deps() -> None:
    names = {r.split("==")[0].lower() for r in DEV_REQUIREMENTS}
    assert all("==" in r for r in DEV_REQUIREMENTS)
    assert {"pyzmq", "uvloop", "msgpack", "pydantic", "ptyprocess", "jinja2"} <= names


def test_build_script_writes_marker_last() -> None:
    script = build_script(DEV_REQUIREMENTS, "dev-x")
    assert script.rstrip().splitlines()[-1].startswith("mv /opt/backend.ai/VERSION.tmp /opt/backend.ai/VERSION")
    assert f"{DEV_SITE_PACKAGES}/krunner" in script and f"{DEV_SITE_PACKAGES}/ai" in script
    assert "/usr/bin/python3 -m venv /opt/backend.ai" in script


def test_runner_command_and_names() -> None:
    assert runner_command("python", "/usr/bin/python3") == [
        "/opt/backend.ai/bin/python", "-s", "-m", "ai.backend.kernel", "python", "/usr/bin/python3",
    ]
    assert runner_command("c", debug=True)[-2:] == ["--debug", "c"]
    assert short_image_name("bai-test/python:latest") == "python"
    assert short_image_name("localhost:5000/a/b-c:1@sha256:00") == "b-c"


def test_format_environ_txt() -> None:
    assert format_environ_txt({"A": "1", "B": "x=y"}) == "A=1\nB=x=y\n"
    with pytest.raises(ValueError):
        format_environ_txt({"A": "multi\nline"})


def test_krunner_mount_validation_and_mounts(tmp_path: Path) -> None:
    (tmp_path / "krunner").mkdir()
    ep = tmp_path / "entrypoint.sh"
    m = KrunnerMount("vol", [(tmp_path / "krunner", f"{DEV_SITE_PACKAGES}/krunner")], ep)
    with pytest.raises(KrunnerMountError, match="does not exist"):
        m.validate()
    ep.write_text("#!/bin/sh\nexec \"$@\"\n")
    with pytest.raises(KrunnerMountError, match="not executable"):
        m.validate()
    ep.chmod(0o755)
    m.validate()
    mounts = m.docker_mounts()
    assert [x["Target"] for x in mounts] == ["/opt/backend.ai", f"{DEV_SITE_PACKAGES}/krunner", "/opt/kernel/entrypoint.sh"]
    assert all(x["ReadOnly"] for x in mounts)
    assert mounts[0]["Type"] == "volume" and mounts[0]["Source"] == "vol"


def test_cli_parsing() -> None:
    assert _parse_names("python, gcc") == ["python", "gcc"]
    assert _parse_names("none") == []
    with pytest.raises(argparse.ArgumentTypeError):
        _parse_names("python,cobol")
    args = build_parser().parse_args(["prepare", "--images", "nodejs"])
    assert args.images == ["nodejs"]
    assert set(TEST_IMAGES) == {"python", "gcc", "nodejs"}
    assert all(img.tag == f"bai-test/{n}:latest" and img.context_dir.joinpath("Dockerfile").is_file()
               for n, img in TEST_IMAGES.items())
