"""``bai-imagekit``: the command line for image authors and CI."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bai-imagekit",
        description="Build, validate and smoke-test Backend.AI kernel images.",
    )
    parser.add_argument("--version", action="version", version=f"bai-imagekit {__version__}")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    sys.exit(0)


if __name__ == "__main__":
    main()
