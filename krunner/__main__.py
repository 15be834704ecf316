"""Command line: ``python -m krunner [--debug] <runtime-type> [<runtime-path>]``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from . import __version__
from .proctitle import take_process_name
from .runtimes.languages import Language, known_types, lookup

USAGE = "usage: krunner [--debug] <runtime-type> [<runtime-path>]"
PYDANTIC_PLUGINS_ENV = "PYDANTIC_DISABLE_PLUGINS"


def _help() -> str:
    return f"""{USAGE}

The Backend.AI-compatible kernel runner.  Binds the REPL channel (PULL 2000,
PUSH 2001, or the ports in /home/config/intrinsic-ports.json) and serves the
agent's ops until SIGINT/SIGTERM.

arguments:
  runtime-type   one of: {", ".join(known_types())}
  runtime-path   the interpreter or compiler in the image (default: found on PATH)

options:
  --debug        verbose logging
  --version      print the version and exit
  -h, --help     show this help and exit
"""


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> tuple[bool, Language, str | None]:
    debug = False
    positional: list[str] = []
    for arg in argv:
        if arg == "--debug":
            debug = True
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"unknown option {arg!r}")
        else:
            positional.append(arg)
    if not positional:
        raise UsageError("missing <runtime-type>")
    if len(positional) > 2:
        raise UsageError(f"unexpected arguments: {' '.join(positional[2:])}")
    language = lookup(positional[0])
    if language is None:
        raise UsageError(f"unknown runtime type {positional[0]!r}; known types: {', '.join(known_types())}")
    return debug, language, positional[1] if len(positional) == 2 else None


def setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


@contextlib.contextmanager
def _no_pydantic_plugin_scan() -> Iterator[None]:
    """The runner ships no pydantic plugins, so skip pydantic's scan of every installed package's
    entry points (about 15 ms of start-up) while our models are built. The variable is removed
    again so that user processes started later never inherit it."""
    had = os.environ.get(PYDANTIC_PLUGINS_ENV)
    os.environ[PYDANTIC_PLUGINS_ENV] = "__all__"
    try:
        yield
    finally:
        if had is None:
            os.environ.pop(PYDANTIC_PLUGINS_ENV, None)
        else:
            os.environ[PYDANTIC_PLUGINS_ENV] = had


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(_help())
        sys.exit(0)
    if "--version" in args:
        print(f"krunner {__version__}")
        sys.exit(0)
    try:
        debug, language, runtime_path = parse_args(args)
    except UsageError as exc:
        print(f"krunner: error: {exc}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    setup_logging(debug)
    take_process_name()
    with open(os.devnull) as devnull:
        sys.stdin = devnull
        import uvloop

        with _no_pydantic_plugin_scan():
            from .app import serve

        sys.exit(uvloop.run(serve(language, runtime_path)))


if __name__ == "__main__":
    main()
