"""Changed files → the kernel directories ``validate --changed`` (the pre-commit hook) checks."""

from __future__ import annotations

from pathlib import Path

from imagekit.changed_files import targets_for_changed


def test_changed_files_map_to_their_kernel_directories(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a/kernel.toml", "a/service-defs/x.json", "a/policy.yml", "b/Dockerfile", "b/sub/policy.yml",
                 "images/foo.Dockerfile", "service-defs/lib.json", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    targets, skipped = targets_for_changed(
        ["a/service-defs/x.json", "a/kernel.toml", "b/sub/policy.yml", "a/policy.yml", "images/foo.Dockerfile",
         "service-defs/lib.json", "README.md", "a/service-defs/deleted.json"])
    assert targets == ["a", "b", "images/foo.Dockerfile"]
    assert skipped == ["service-defs/lib.json", "README.md"]


def test_the_working_directory_itself_can_be_the_kernel(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "service-defs").mkdir()
    assert targets_for_changed(["service-defs/app.json", "Dockerfile"]) == (["."], [])
