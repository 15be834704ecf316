"""Command line: ``python -m krunner [--debug] <runtime-type> [<runtime-path>]``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from . import __version__
from .proctitle import take_process_name
from .runtimes.languages import Language, known_types, lookup

PYDANTIC_PLUGINS_ENV = "PYDANTIC_DISABLE_PLUGINS"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="krunner",
        description="The Backend.AI-compatible kernel runner. Binds the REPL channel (PULL 2000, PUSH 2001, or "
        "the ports in /home/config/intrinsic-ports.json) and serves the agent's ops until SIGINT/SIGTERM.",
    )
    parser.add_argument("--debug", action="store_true", help="verbose logging")
    parser.add_argument("--version", action="version", version=f"krunner {__version__}")
    parser.add_argument("runtime_type", metavar="runtime-type", nargs="?", default=None,
                        help="one of: " + ", ".join(known_types()))
    parser.add_argument("runtime_path", metavar="runtime-path", nargs="?", default=None,
                        help="the interpreter or compiler in the image (default: found on PATH)")
    return parser


def parse_args(argv: list[str]) -> tuple[bool, Language, str | None]:
    """``(debug, language, runtime_path)``; a usage error exits 2 with the reason."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runtime_type is None:
        parser.error("missing <runtime-type>")
    language = lookup(args.runtime_type)
    if language is None:
        parser.error(f"unknown runtime type {args.runtime_type!r}; known types: {', '.join(known_types())}")
    return args.debug, language, args.runtime_path


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
    debug, language, runtime_path = parse_args(sys.argv[1:] if argv is None else argv)
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
