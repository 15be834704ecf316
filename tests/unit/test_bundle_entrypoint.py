"""The entrypoint's image-bootstrap handling (krunner/entrypoint.py), run on the host with /bin/sh."""

from __future__ import annotations

import time

from krunner import entrypoint


def _script(tmp_path, body: str, mode: int = 0o755):
    path = tmp_path / "bootstrap.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def test_exports_are_imported(tmp_path):
    env = entrypoint.run_bootstrap(_script(tmp_path, "export BOOT_A='x y'\nexport BOOT_B=\"$1\"\n"), ["runner", "arg"], 10)
    assert env is not None and env["BOOT_A"] == "x y" and env["BOOT_B"] == "runner"
    assert "PWD" not in env and "SHLVL" not in env


def test_exit_in_bootstrap_does_not_end_the_entrypoint(tmp_path, capsys):
    assert entrypoint.run_bootstrap(_script(tmp_path, "export BOOT_A=1\nexit 3\n"), [], 10) is None
    assert "its exports are ignored" in capsys.readouterr().err


def test_timeout_and_background_daemons(tmp_path, capsys):
    t0 = time.monotonic()
    assert entrypoint.run_bootstrap(_script(tmp_path, "sleep 30\n"), [], 0.5) is None
    assert time.monotonic() - t0 < 5 and "did not finish" in capsys.readouterr().err
    t0 = time.monotonic()
    env = entrypoint.run_bootstrap(_script(tmp_path, "(sleep 3 &)\nexport BOOT_D=1\n"), [], 10)
    assert env is not None and env["BOOT_D"] == "1" and time.monotonic() - t0 < 2.5


def test_skipped_when_not_executable_missing_or_no_shell(tmp_path, capsys, monkeypatch):
    assert entrypoint.run_bootstrap(tmp_path / "absent.sh", [], 10) is None
    assert entrypoint.run_bootstrap(_script(tmp_path, "true\n", mode=0o644), [], 10) is None
    assert "not executable" in capsys.readouterr().err
    monkeypatch.setattr(entrypoint, "BOOTSTRAP_SHELL", str(tmp_path / "no-sh"))
    assert entrypoint.run_bootstrap(_script(tmp_path, "true\n"), [], 10) is None
    assert "has no" in capsys.readouterr().err


def test_parse_env_dump():
    assert entrypoint.parse_env_dump(b"A=1\0B=x=y\0_=/bin/sh\0PWD=/\0\0") == {"A": "1", "B": "x=y"}
