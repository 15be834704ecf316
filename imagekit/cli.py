"""``bai-imagekit``: the command line for image authors and CI.

Only argument wiring lives here; each subcommand is a module of
:mod:`imagekit.commands` with ``add_parser(subparsers)`` that sets
``handler`` (``args -> exit code``). Exit codes: 0 ok, 1 findings/failed
checks, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands import command_modules
from .config import ConfigError, configured
from .console import configure_from, output_options
from .errors import EnvironmentProblem, UsageError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class _SubParsers(argparse._SubParsersAction):
    """Every subcommand (nested ones too) gets the shared output options (-q/--quiet, -v/--verbose)."""

    _output = output_options()

    def add_parser(self, name, **kwargs):
        kwargs["parents"] = [*kwargs.get("parents", ()), self._output]
        return super().add_parser(name, **kwargs)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep its message format
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("action", _SubParsers)
        return super().add_subparsers(**kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bai-imagekit",
        description="Build, validate and smoke-test Backend.AI kernel images.",
        epilog="Exit codes: 0 ok, 1 findings or failed checks, 2 usage or environment error.",
    )
    parser.add_argument("--version", action="version", version=f"bai-imagekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in command_modules():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        sys.exit(EXIT_OK if args.command is None else EXIT_ERROR)
    configure_from(args)  # -q/--quiet, -v/--verbose: the same in every command
    try:
        with configured(args):  # the project's configuration file, for commands that take one
            code = handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # already "file[:line]: error: …"
        code = EXIT_ERROR
    except (UsageError, EnvironmentProblem) as exc:
        print(f"bai-imagekit: error: {exc}", file=sys.stderr)
        code = EXIT_ERROR
    except KeyboardInterrupt:
        print("bai-imagekit: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
