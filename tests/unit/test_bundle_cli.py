"""``bai-imagekit krunner``: help and usage errors (no Docker involved)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imagekit.cli import build_parser


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imagekit.cli", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [("krunner", "--help"), ("krunner", "build", "--help"), ("krunner", "install", "--help")])
def test_help(args):
    out = _cli(*args)
    assert out.returncode == 0 and "usage" in out.stdout.lower()


def test_missing_tarball_is_a_usage_error(tmp_path):
    out = _cli("krunner", "install", "--tarball", str(tmp_path / "nope.tar.xz"))
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_not_a_bundle_is_a_usage_error(tmp_path):
    bogus = tmp_path / "bogus.tar.xz"
    bogus.write_bytes(b"not xz")
    out = _cli("krunner", "install", "--tarball", str(bogus))
    assert out.returncode == 2 and "not a usable krunner bundle" in out.stderr


def test_no_subcommand_exits_2():
    assert _cli("krunner").returncode == 2


def test_parser_wiring():
    args = build_parser().parse_args(["krunner", "build", "--output", "/tmp/x", "--force"])
    assert str(args.output) == "/tmp/x" and args.force and callable(args.handler)
