"""The binfmt handler state the arm64 test set-up reads (imagekit.localenv.emulation)."""

from __future__ import annotations

from pathlib import Path

from imagekit.localenv.emulation import HANDLER, handler_state


def test_enabled_handler_with_fix_binary_flag(tmp_path: Path) -> None:
    (tmp_path / HANDLER).write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n"
                                    "offset 0\nmagic 7f454c46\n")
    assert handler_state(tmp_path) == (True, "PF")


def test_disabled_handler(tmp_path: Path) -> None:
    (tmp_path / HANDLER).write_text("disabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: \noffset 0\n")
    assert handler_state(tmp_path) == (False, "")


def test_no_handler_registered(tmp_path: Path) -> None:
    assert handler_state(tmp_path) == (False, "")
