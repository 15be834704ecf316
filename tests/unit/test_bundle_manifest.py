"""Manifest and verification logic of the krunner bundle (imagekit/bundle/manifest.py)."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from imagekit.bundle import volume_name
from imagekit.bundle.manifest import Entry, Manifest, ManifestError, entries_of, parse_listing, verify


def _tree(root):
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_bytes(b"\x7fELF launcher")
    (root / "bin" / "python").chmod(0o755)
    (root / "bin" / "python3").symlink_to("python")
    (root / "lib").mkdir()
    (root / "lib" / "os.py").write_text("print('os')\n")
    (root / "lib" / "os.py").chmod(0o644)
    for d in (root, root / "bin", root / "lib"):
        d.chmod(0o755)


def _manifest(root) -> Manifest:
    files = []
    for e in sorted(entries_of(root).values(), key=lambda e: e.path):
        raw = {k: v for k, v in e.__dict__.items() if v is not None}
        files.append(raw)
    text = json.dumps({"format": 1, "variant": "static-gnu", "arch": "x86_64", "python": "3.11",
                       "agent_python": "3.13", "volume_version": 1000000001,
                       "version": "0.1.0+abc", "inputs_hash": "abc", "prefix": "/opt/backend.ai",
                       "files": files}, indent=1) + "\n"
    return Manifest.from_text(text)


def test_intact_tree_verifies(tmp_path):
    _tree(tmp_path)
    m = _manifest(tmp_path)
    assert {e.path for e in m.files} == {"bin", "bin/python", "bin/python3", "lib", "lib/os.py"}
    assert verify(m, entries_of(tmp_path), version_text="1000000001\n", manifest_text=m.text) == []
    assert volume_name(m.volume_version, m.arch, m.variant) == "backendai-krunner.v1000000001.x86_64.static-gnu"


def test_tampering_is_reported(tmp_path):
    _tree(tmp_path)
    m = _manifest(tmp_path)
    (tmp_path / "lib" / "os.py").write_text("print('evil')\n")
    (tmp_path / "bin" / "python").chmod(0o777)
    (tmp_path / "bin" / "python3").unlink()
    (tmp_path / "bin" / "python3").symlink_to("/usr/bin/python3")
    (tmp_path / "extra").write_text("x")
    problems = verify(m, entries_of(tmp_path), version_text="1000000001", manifest_text=m.text)
    assert "lib/os.py: content differs (size 14, expected 12)" in problems
    assert "bin/python: mode 0777, expected 0755" in problems
    assert "bin/python3: links to '/usr/bin/python3', expected 'python'" in problems
    assert "unexpected extra" in problems


def test_half_extracted_volume_is_incomplete(tmp_path):
    _tree(tmp_path)
    m = _manifest(tmp_path)
    os.unlink(tmp_path / "lib" / "os.py")
    problems = verify(m, entries_of(tmp_path), version_text=None, manifest_text=None)
    assert problems == ["missing lib/os.py", "missing MANIFEST.json", "missing VERSION (extraction did not finish)"]
    assert verify(m, entries_of(tmp_path), version_text="2", manifest_text="{}")[-2:] == [
        "MANIFEST.json differs from the bundle's", "VERSION is '2', expected 1000000001"]


def test_parse_listing_matches_local_walk(tmp_path):
    _tree(tmp_path)
    local = entries_of(tmp_path)
    lines = []
    for e in local.values():
        kind = {"file": "f", "dir": "d", "symlink": "l"}[e.type]
        mode = e.mode.lstrip("0") if e.mode else "777"
        lines.append(f"E\t{kind}\t{mode}\t{e.size or 0}\t{e.path}\t{e.target or ''}")
        if e.type == "file":
            lines.append(f"H\t{e.sha256}  ./{e.path}")
    assert parse_listing("\n".join(lines)) == local


def test_from_tarball_reads_the_first_member(tmp_path):
    _tree(tmp_path / "root")
    m = _manifest(tmp_path / "root")
    tarball = tmp_path / "b.tar.xz"
    with tarfile.open(tarball, "w:xz") as tar:
        info = tarfile.TarInfo("MANIFEST.json")
        info.size = len(m.text.encode())
        tar.addfile(info, io.BytesIO(m.text.encode()))
        tar.add(tmp_path / "root" / "lib", arcname="lib")
    assert Manifest.from_tarball(tarball) == m
    bad = tmp_path / "bad.tar.xz"
    with tarfile.open(bad, "w:xz") as tar:
        tar.add(tmp_path / "root" / "lib", arcname="lib")
    with pytest.raises(ManifestError, match="first member"):
        Manifest.from_tarball(bad)


@pytest.mark.parametrize("raw", ["[]", "{}", '{"format": 1}', "not json"])
def test_malformed_manifests(raw):
    with pytest.raises(ManifestError):
        Manifest.from_text(raw)


def test_entry_paths_must_stay_inside():
    with pytest.raises(ManifestError):
        Entry.from_json({"path": "../etc/passwd", "type": "file"})
    with pytest.raises(ManifestError):
        Entry.from_json({"path": "/etc/passwd", "type": "file"})
