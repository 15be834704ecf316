"""The console layer under a real pseudo-terminal vs a pipe: live redraws vs plain lines, colour by
NO_COLOR/FORCE_COLOR, and -q/--quiet, -v/--verbose defined once for every subcommand.

Each case runs a child Python whose stderr is either the slave end of ``pty.openpty()`` (a real
TTY) or a pipe, and looks at the bytes that come out.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imagekit.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
ERASE = "\r\033[K"
ESC = "\033["


def _run(code: str, *, tty: bool, env: dict[str, str] | None = None, args: list[str] = ()) -> str:
    """Run *code* in a child; its stderr is a real pseudo-terminal (*tty*) or a pipe. Returns stderr."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    full_env.update({"TERM": "xterm", "PYTHONPATH": str(REPO), **(env or {})})
    argv = [sys.executable, "-c", textwrap.dedent(code), *args]
    if not tty:
        out = subprocess.run(argv, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        assert out.returncode == 0, out.stderr.decode()
        return out.stderr.decode()
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, env=full_env, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)
    return b"".join(chunks).decode().replace("\r\n", "\n")  # the line discipline maps \n to \r\n


TASK = """
    import sys
    from imagekit.console import configure, progress, task
    configure(quiet="-q" in sys.argv, verbose="-v" in sys.argv)
    with task("build", tick=0) as t:
        t.step("Step 1/2 : FROM base")
        progress("downloading layer a")
        progress("downloading layer b")
        t.step("Step 2/2 : RUN make")
        progress("compiling")
    progress("after the task")
"""


def test_task_redraws_one_live_line_on_a_tty():
    out = _run(TASK, tty=True)
    assert f"{ERASE}" in out
    # the live line is redrawn in place: each update starts with \r + erase-line, no newline between them
    live = [part for part in out.split(ERASE) if "downloading layer" in part]
    assert len(live) == 2 and all("\n" not in part for part in live), out
    assert "build: downloading layer a" in live[0] and "build: downloading layer b" in live[1]
    # steps are kept lines with the elapsed time; the end line says done and how long
    kept = [line.split(ERASE)[-1] for line in out.split("\n") if line]
    plain = [re.sub(r"\033\[\d*m", "", line) for line in kept]
    assert any(re.fullmatch(r"\[ *\d+\.\ds\] build: Step 1/2 : FROM base", line) for line in plain), plain
    assert any("build: done in" in line for line in kept)
    assert any(line.endswith("after the task" + ESC + "0m") for line in kept), kept


def test_task_prints_plain_lines_on_a_pipe():
    out = _run(TASK, tty=False)
    assert ESC not in out and "\r" not in out
    lines = out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines[:-1]] == [
        "build: Step 1/2 : FROM base", "build: downloading layer a", "build: downloading layer b",
        "build: Step 2/2 : RUN make", "build: compiling", lines[-2].split("] ", 1)[1],
    ]
    assert lines[-2].split("] ", 1)[1].startswith("build: done in ")
    assert lines[-1] == "after the task"
    assert all(line.startswith("[") for line in lines[:-1])


def test_quiet_drops_progress_and_verbose_keeps_every_line():
    assert _run(TASK, tty=False, args=["-q"]) == ""
    assert _run(TASK, tty=True, args=["-q"]) == ""
    verbose = _run(TASK, tty=True, args=["-v"])
    kept = [line.split(ERASE)[-1] for line in verbose.split("\n")]
    assert any("build: downloading layer a" in line for line in kept)  # a kept line, not only redrawn
    assert any("build: downloading layer b" in line for line in kept)


BOARD = """
    from imagekit.console import Board
    with Board(["img-a", "img-b"], tick=0) as board:
        board.update("img-a", "1 checks, 0 failed; labels")
        board.update("img-b", "1 checks, 0 failed; labels")
        board.note("FAIL img-b  query (0.1 s)")
        board.update("img-b", "passed (2 checks, 0.2 s)", done=True)
        board.update("img-a", "FAILED (2 checks, 0.3 s)", done=True)
"""


def test_board_redraws_a_line_per_image_on_a_tty():
    out = _run(BOARD, tty=True)
    assert f"{ESC}2F" in out  # back up over the two lines of the board to redraw them
    final = out.rsplit(f"{ESC}2F", 1)[1]
    lines = [line.replace(ERASE, "") for line in final.split("\n") if line]
    assert lines[0].endswith("img-a: FAILED (2 checks, 0.3 s)") and lines[1].endswith("img-b: passed (2 checks, 0.2 s)")
    assert "FAIL img-b  query (0.1 s)" in out


def test_board_prints_a_plain_line_per_change_on_a_pipe():
    out = _run(BOARD, tty=False)
    assert ESC not in out and "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 5
    assert lines[0].endswith("img-a: 1 checks, 0 failed; labels") and lines[2] == "FAIL img-b  query (0.1 s)"
    assert lines[4].endswith("img-a: FAILED (2 checks, 0.3 s)")


COLOUR = """
    import sys
    from imagekit.console import paint
    sys.stderr.write(paint("red text", "red", sys.stderr) + "\\n")
"""


@pytest.mark.parametrize(("tty", "env", "coloured"), [
    (True, {}, True),
    (False, {}, False),
    (True, {"NO_COLOR": "1"}, False),
    (True, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),  # NO_COLOR wins
    (False, {"FORCE_COLOR": "1"}, True),
    (False, {"FORCE_COLOR": "0"}, False),
    (True, {"TERM": "dumb"}, False),
    (True, {"NO_COLOR": ""}, True),  # only a non-empty value counts
])
def test_colour_follows_tty_no_color_and_force_color(tty, env, coloured):
    out = _run(COLOUR, tty=tty, env=env)
    assert ("\033[31mred text\033[0m" in out) is coloured
    assert "red text" in out


def test_build_log_keeps_steps_and_redraws_the_rest_on_a_tty():
    code = """
        from imagekit.commands.build import build_log
        from imagekit.console import task
        with task("build", tick=0) as t:
            log = build_log(t)
            for line in ["building Dockerfile", "Step 1/2 : FROM x", " ---> abc", "#5 [2/3] RUN make", "make: ok",
                         "validating sha256:1"]:
                log(line)
    """
    out = _run(code, tty=True)
    kept = [line.split(ERASE)[-1] for line in out.split("\n") if line]
    for step in ("building Dockerfile", "Step 1/2 : FROM x", "#5 [2/3] RUN make", "validating sha256:1"):
        assert any(line.endswith(f"build: {step}") for line in kept), (step, kept)
    assert not any(line.endswith("build:  ---> abc") for line in kept)  # redrawn, then overwritten
    assert f"{ERASE}" in out and "---> abc" in out


# ------------------------------------------------------------------------------ -q / -v everywhere


def _leaf_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if prefix:
        yield prefix, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _leaf_parsers(sub, (*prefix, name))


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def test_quiet_and_verbose_are_the_same_option_in_every_command():
    parsers = dict(_leaf_parsers(build_parser()))
    assert ("test",) in parsers and ("registry", "scan") in parsers and ("krunner", "build") in parsers
    reference = None
    for path, parser in parsers.items():
        quiet, verbose = _option(parser, "--quiet"), _option(parser, "--verbose")
        shape = tuple((a.option_strings, a.dest, a.nargs, a.const, a.default, a.help) for a in (quiet, verbose))
        reference = reference or shape
        assert shape == reference, path
        assert quiet.option_strings == ["-q", "--quiet"] and verbose.option_strings == ["-v", "--verbose"]
        assert quiet.default is argparse.SUPPRESS and verbose.default is argparse.SUPPRESS
        groups = [g for g in parser._mutually_exclusive_groups if quiet in g._group_actions]
        assert groups and verbose in groups[0]._group_actions, f"{path}: -q and -v must exclude each other"


@pytest.mark.parametrize("argv", [
    ["init", "DIR"], ["validate", "x"], ["test", "img"], ["registry", "scan", "127.0.0.1:5000"],
    ["krunner", "build"], ["policy", "check", "p.yml"],
])
def test_quiet_and_verbose_parse_the_same_everywhere(argv):
    parser = build_parser()
    head, tail = argv[:-1] or argv, argv[-1:] if len(argv) > 1 else []
    for flag, expected in (("-q", {"quiet": True}), ("--verbose", {"verbose": True}), (None, {})):
        args = parser.parse_args([*head, *([flag] if flag else []), *tail])
        got = {k: getattr(args, k) for k in ("quiet", "verbose") if hasattr(args, k)}
        assert got == expected, (argv, flag)
    # given before a nested command, it still counts
    if argv[0] in ("registry", "krunner", "policy"):
        args = parser.parse_args([argv[0], "-q", *argv[1:]])
        assert args.quiet is True
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([*head, "-q", "-v", *tail])
    assert exc.value.code == 2


INIT = """
    import sys
    from imagekit.cli import main
    main(["init", sys.argv[1], *sys.argv[2:]])
"""


def test_a_real_command_colours_progress_on_a_tty_and_honours_quiet(tmp_path):
    tty = _run(INIT, tty=True, args=[str(tmp_path / "a")])
    assert f"{ESC}2mwrote {tmp_path / 'a'}" in tty  # dim progress lines on a terminal
    pipe = _run(INIT, tty=False, args=[str(tmp_path / "b")])
    assert ESC not in pipe and f"wrote {tmp_path / 'b' / 'kernel.toml'}" in pipe.splitlines()
    assert _run(INIT, tty=True, args=[str(tmp_path / "c"), "--quiet"]) == ""
    assert (tmp_path / "c" / "kernel.toml").is_file()
    assert f"{ESC}2m" not in _run(INIT, tty=True, args=[str(tmp_path / "d"), "-v"], env={"NO_COLOR": "1"})
