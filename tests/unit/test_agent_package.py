"""``bai-imagekit krunner package``: the wheel a stock agent installs as its krunner.

The wheel is installed with the real pip into a scratch directory and read back the way the agent
reads it: entry point group ``backendai_krunner_v10`` and the package files of
``ai.backend.krunner.static_gnu`` through ``importlib``.
"""

from __future__ import annotations

import io
import json
import lzma
import subprocess
import sys
import tarfile
import zipfile

import pytest

from imagekit.bundle.agent_package import ENTRY_POINT_GROUP, build_agent_package


def _bundle(path, volume_version=1234567890):
    manifest = {"format": 1, "variant": "static-gnu", "arch": "x86_64", "python": "3.11",
                "agent_python": "3.13", "volume_version": volume_version, "version": "0.1.0+abc",
                "inputs_hash": "abc", "prefix": "/opt/backend.ai", "files": []}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("MANIFEST.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path.write_bytes(lzma.compress(raw.getvalue()))
    return path


def test_wheel_is_what_the_agent_reads(tmp_path):
    tarball = _bundle(tmp_path / "krunner-env.static-gnu.x86_64.tar.xz")
    package = build_agent_package(tarball, tmp_path / "dist")
    assert package.wheel.name == (
        "backend_ai_krunner_static_gnu-4.4.0+bai.v1234567890-py3-none-manylinux2014_x86_64.whl")
    assert package.volume == "backendai-krunner.v1234567890.x86_64.static-gnu"
    with zipfile.ZipFile(package.wheel) as zf:
        record = zf.read("backend_ai_krunner_static_gnu-4.4.0+bai.v1234567890.dist-info/RECORD").decode()
        assert all(name in record for name in zf.namelist())
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                          "--disable-pip-version-check", "--target", str(target), str(package.wheel)],
                         capture_output=True, text=True, timeout=120)
    assert pip.returncode == 0, pip.stderr
    probe = f"""
import json, sys
from importlib.metadata import entry_points, version
from importlib.resources import files
sys.path.insert(0, {str(target)!r})
(ep,) = [e for e in entry_points(group={ENTRY_POINT_GROUP!r}) if e.name == "static_gnu"]
import asyncio
asyncio.run(ep.load().init({{}}))
pkg = files("ai.backend.krunner.static_gnu")
print(json.dumps({{
    "version": version("backend.ai-krunner-static-gnu"),
    "versions": pkg.joinpath("versions.txt").read_text().splitlines(),
    "volume": pkg.joinpath("krunner-version.static-gnu.txt").read_text().strip(),
    "python": pkg.joinpath("krunner-python.static-gnu.txt").read_text().strip(),
    "tarball": pkg.joinpath("krunner-env.static-gnu.x86_64.tar.xz").read_bytes() == {tarball.read_bytes()!r},
}}))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"version": "4.4.0+bai.v1234567890", "versions": ["static-gnu"],
                                      "volume": "1234567890", "python": "3.13", "tarball": True}


def test_package_cli_errors(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "imagekit.cli", "krunner", "package", *args],
                              capture_output=True, text=True, timeout=60)

    missing = cli("--tarball", str(tmp_path / "nope.tar.xz"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bogus = tmp_path / "bogus.tar.xz"
    bogus.write_bytes(b"not xz")
    broken = cli("--tarball", str(bogus), "-o", str(tmp_path / "dist"))
    assert broken.returncode == 2 and "not a usable krunner bundle" in broken.stderr
    bad_version = cli("--tarball", str(_bundle(tmp_path / "b.tar.xz")), "--base-version", "four")
    assert bad_version.returncode == 2 and "--base-version" in bad_version.stderr
    ok = cli("--tarball", str(tmp_path / "b.tar.xz"), "-o", str(tmp_path / "dist"), "--base-version", "4.5.1")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("backend_ai_krunner_static_gnu-4.5.1+bai.v1234567890-py3-none-manylinux2014_x86_64.whl")


@pytest.mark.parametrize("args", [("krunner", "package", "--help")])
def test_help(args):
    out = subprocess.run([sys.executable, "-m", "imagekit.cli", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "backend.ai-krunner-static-gnu" in out.stdout
