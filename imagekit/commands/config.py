"""``bai-imagekit config``: the project configuration file (``.bai-imagekit.toml``; docs/config.md).

``config schema`` prints its JSON schema for editors; ``config check [FILE]`` reads the file that
would be used (or FILE) and reports its first problem. ``validate --print-config`` shows the merged
result and where each value came from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..findings import display_path

EPILOG = """\
examples:
  bai-imagekit config schema -o .bai-imagekit.schema.json   (then `#:schema ./.bai-imagekit.schema.json` in the file)
  bai-imagekit config check                                  (the file found from here upward)
  bai-imagekit validate --print-config                       (the merged settings and their sources)

exit codes: 0 ok, 2 the file is broken (file:line: error: …) or cannot be written."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config", help="the configuration file: its JSON schema, or check it",
        description="The project configuration: .bai-imagekit.toml, or [tool.bai-imagekit] in pyproject.toml, "
        "found from the working directory upward (see docs/config.md).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="config_action", metavar="ACTION", parser_class=type(parser))
    schema = sub.add_parser("schema", help="print the JSON schema of the file (for editors)",
                            description="Print the JSON schema of .bai-imagekit.toml.")
    schema.add_argument("-o", "--output", metavar="FILE", type=Path, help="write to FILE instead of stdout")
    schema.set_defaults(handler=_schema)
    check = sub.add_parser("check", help="read the configuration file and report its first problem",
                           description="Read FILE, or the file found from the working directory upward.")
    check.add_argument("file", nargs="?", metavar="FILE", type=Path, help="the file (default: the one found)")
    check.set_defaults(handler=_check)


def _schema(args: argparse.Namespace) -> int:
    from ..config.__main__ import schema_text

    if args.output is None:
        sys.stdout.write(schema_text())
        return 0
    try:
        args.output.write_text(schema_text(), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from exc
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..config import ConfigError, find_config, load_config

    path = args.file or find_config()
    if path is None:
        print(f"no .bai-imagekit.toml or [tool.bai-imagekit] from {display_path(Path.cwd()) or '.'} upward")
        return 0
    if not path.is_file():
        raise ConfigError(f"{path}: error: no such file")
    loaded = load_config(path)
    print(f"{display_path(loaded.path)}{f' [{loaded.table}]' if loaded.table else ''}: ok")
    return 0
