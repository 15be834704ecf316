"""Terminal output shared by every command: colour, verbosity and progress on long work, decided in one place.

* Colour: ``NO_COLOR`` (any non-empty value) turns it off; else ``FORCE_COLOR`` (non-empty, not
  ``0``) turns it on even when the stream is not a terminal; else only on a TTY whose ``TERM`` is
  not ``dumb``.
* Verbosity: ``-q/--quiet`` and ``-v/--verbose`` exist once, in :func:`output_options` (the parent
  parser every subcommand gets); ``bai-imagekit`` applies them with :func:`configure` before the
  command runs. Quiet drops progress lines; verbose adds :func:`detail` lines (and keeps every
  line of a live task instead of redrawing it). Errors and results are never affected.
* Progress goes to stderr so stdout stays machine-readable. Inside :func:`task` on a TTY, the
  task's last message is one live line, redrawn in place with the elapsed time (``\\r`` + erase
  line); :meth:`Task.step` lines are kept above it. Not on a TTY every message is a plain line.
  :class:`Board` keeps one live line per item (``test -j``: one per image), redrawn together by
  moving the cursor up; not on a TTY it prints a plain line per change.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_CODES = {"red": "31", "yellow": "33", "green": "32", "blue": "34", "bold": "1", "dim": "2", "cyan": "36"}
ERASE_LINE = "\r\033[K"  # back to column 0, erase to the end of the line

QUIET, NORMAL, VERBOSE = -1, 0, 1
_state = {"level": NORMAL}
_lock = threading.RLock()
_active: list["Task"] = []  # the innermost live task receives progress()


# ------------------------------------------------------------------------------ colour and TTY


def is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR", "")
    if force and force.lower() not in ("0", "false", "no"):
        return True
    return is_tty(stream)


def paint(text: str, colour: str, stream: TextIO = sys.stdout) -> str:
    if not use_colour(stream):
        return text
    return f"\033[{_CODES[colour]}m{text}\033[0m"


# ------------------------------------------------------------------------------ verbosity


def output_options() -> argparse.ArgumentParser:
    """The parent parser of every subcommand: ``-q/--quiet`` and ``-v/--verbose``, defined once.

    Defaults are suppressed so a nested command (``registry scan``) keeps a flag given before it."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("output")
    excl = group.add_mutually_exclusive_group()
    excl.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                      help="no progress lines on stderr (results and errors are still printed)")
    excl.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                      help="more detail on stderr: every line of long work, and what each step decided")
    return parent


def configure(*, quiet: bool = False, verbose: bool = False) -> None:
    _state["level"] = QUIET if quiet else VERBOSE if verbose else NORMAL


def configure_from(args: argparse.Namespace) -> None:
    configure(quiet=bool(getattr(args, "quiet", False)), verbose=bool(getattr(args, "verbose", False)))


def level() -> int:
    return _state["level"]


def is_quiet() -> bool:
    return _state["level"] == QUIET


def is_verbose() -> bool:
    return _state["level"] == VERBOSE


# ------------------------------------------------------------------------------ progress


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}" if minutes else f"{seconds:4.1f}s"


def progress(message: str) -> None:
    """A progress line for long work (stderr); inside a live :func:`task` it becomes the live line."""
    if is_quiet():
        return
    with _lock:
        if _active:
            _active[-1].update(message)
            return
    _write_line(sys.stderr, paint(message, "dim", sys.stderr))


def detail(message: str) -> None:
    """A line shown only with ``--verbose``."""
    if is_verbose():
        progress(message)


def _write_line(stream: TextIO, text: str) -> None:
    with _lock:
        stream.write(text + "\n")
        stream.flush()


class Task:
    """A long piece of work with an elapsed-time clock; see :func:`task`."""

    def __init__(self, name: str, stream: TextIO, live: bool, tick: float) -> None:
        self.name, self.stream, self.live, self.tick = name, stream, live, tick
        self.started = time.monotonic()
        self.message = ""
        self.steps = 0
        self.outcome: str | None = None  # the last line's word instead of "done" (e.g. "refused")
        self._drawn = False
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _prefix(self) -> str:
        return paint(f"[{_elapsed(self.elapsed())}]", "dim", self.stream)

    def _draw(self) -> None:  # under _lock
        width = _columns(self.stream)
        text = f"[{_elapsed(self.elapsed())}] {self.name}: {self.message}"
        if len(text) > width - 1:
            text = text[: max(width - 2, 10)] + "…"
        self.stream.write(ERASE_LINE + paint(text, "dim", self.stream))
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:  # under _lock
        if self._drawn:
            self.stream.write(ERASE_LINE)
            self._drawn = False

    def update(self, message: str) -> None:
        """The current activity: the live line on a TTY (a kept line with --verbose), else a plain line."""
        if is_quiet():
            return
        message = message.removeprefix(f"{self.name}: ")  # callers that already name the task
        with _lock:
            self.message = message
            if self.live and not is_verbose():
                self._draw()
            else:
                self._clear()
                _write_line(self.stream, f"{self._prefix()} {self.name}: {message}")
                if self.live:
                    self._draw()

    def step(self, message: str) -> None:
        """A milestone, kept on screen (above the live line on a TTY)."""
        if is_quiet():
            return
        message = message.removeprefix(f"{self.name}: ")
        with _lock:
            self.steps += 1
            self.message = ""  # the step is the current activity now; the next update draws the live line
            self._clear()
            _write_line(self.stream, f"{self._prefix()} {self.name}: {message}")

    def _run_ticker(self) -> None:
        while not self._stop.wait(self.tick):
            with _lock:
                if self.message and not is_verbose():
                    self._draw()

    def _start(self) -> None:
        if self.live and self.tick > 0 and not is_quiet():
            self._ticker = threading.Thread(target=self._run_ticker, name=f"progress-{self.name}", daemon=True)
            self._ticker.start()

    def _finish(self, outcome: str) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if is_quiet():
            return
        with _lock:
            self._clear()
            _write_line(self.stream, f"{self._prefix()} {self.name}: {outcome}")


def _columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns if columns > 0 else 80  # a terminal that never got a size says 0


@contextmanager
def task(name: str, *, stream: TextIO | None = None, tick: float = 0.5) -> Iterator[Task]:
    """Run a long task: its :func:`progress` messages become one live line on a TTY (plain lines
    otherwise), each prefixed with the elapsed time; ends with ``done`` or ``failed`` and the time."""
    stream = stream or sys.stderr
    current = Task(name, stream, is_tty(stream), tick)
    with _lock:
        _active.append(current)
    current._start()
    outcome = "failed"
    try:
        yield current
        outcome = current.outcome or "done"
    finally:
        with _lock:
            _active.remove(current)
        current._finish(f"{outcome} in {_elapsed(current.elapsed()).strip()}")


class Board:
    """One live line per item (``test -j``): redrawn together in place on a TTY, a plain line per change otherwise."""

    def __init__(self, items: list[str], *, stream: TextIO | None = None, tick: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.live = is_tty(self.stream)
        self.items = list(items)
        self.lines = {item: "waiting" for item in items}
        self.started = {item: None for item in items}  # type: dict[str, float | None]
        self.finished: dict[str, float] = {}
        self._drawn = 0
        self._stop = threading.Event()
        self._tick = tick
        self._ticker: threading.Thread | None = None

    def _text(self, item: str) -> str:
        begun = self.started[item]
        if item in self.finished:  # the final message carries the item's own time
            clock = "[ done]"
        else:
            clock = f"[{_elapsed(time.monotonic() - begun)}]" if begun is not None else "[  -  ]"
        return f"{clock} {item}: {self.lines[item]}"

    def _redraw(self) -> None:  # under _lock
        out = []
        if self._drawn:
            out.append(f"\033[{self._drawn}F")  # to the start of the first line of the board
        width = _columns(self.stream)
        for item in self.items:
            text = self._text(item)
            if len(text) > width - 1:
                text = text[: max(width - 2, 10)] + "…"
            out.append(ERASE_LINE + text + "\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = len(self.items)

    def update(self, item: str, message: str, *, done: bool = False) -> None:
        if is_quiet():
            return
        with _lock:
            if self.started[item] is None:
                self.started[item] = time.monotonic()
            if done:
                self.finished[item] = time.monotonic()
            self.lines[item] = message
            if self.live:
                self._redraw()
            else:
                _write_line(self.stream, self._text(item))

    def note(self, text: str) -> None:
        """A line kept above the board (e.g. a failed check with --verbose)."""
        if is_quiet():
            return
        with _lock:
            if self.live and self._drawn:
                self.stream.write(f"\033[{self._drawn}F\033[J")
                self._drawn = 0
            _write_line(self.stream, text)
            if self.live:
                self._redraw()

    def __enter__(self) -> "Board":
        if self.live and not is_quiet():
            with _lock:
                self._redraw()
            if self._tick > 0:
                self._ticker = threading.Thread(target=self._run_ticker, name="progress-board", daemon=True)
                self._ticker.start()
        return self

    def _run_ticker(self) -> None:
        while not self._stop.wait(self._tick):
            with _lock:
                self._redraw()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self.live and not is_quiet():
            with _lock:
                self._redraw()
