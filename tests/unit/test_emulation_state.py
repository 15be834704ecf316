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


# -- the product's check (imagekit.bundle.emulation_problem: `krunner build --arch`, `test --platform`)


def test_the_host_architecture_needs_no_emulation(tmp_path: Path) -> None:
    from imagekit.bundle import emulation_problem, host_arch

    assert emulation_problem(host_arch(), tmp_path) is None


def test_a_foreign_architecture_needs_an_enabled_handler(tmp_path: Path) -> None:
    from imagekit.bundle import ARCHES, emulation_problem, host_arch

    foreign = next(a for a in ARCHES if a != host_arch())
    missing = emulation_problem(foreign, tmp_path)
    assert missing is not None and f"qemu-{foreign}" in missing and "qemu-user-static" in missing
    (tmp_path / f"qemu-{foreign}").write_text("disabled\nflags: F\n")
    assert emulation_problem(foreign, tmp_path) is not None
    (tmp_path / f"qemu-{foreign}").write_text("enabled\nflags: PF\n")
    assert emulation_problem(foreign, tmp_path) is None
