"""Finding and reading the configuration file.

From the working directory upward to the filesystem root, the first directory with
``.bai-imagekit.toml`` or a ``pyproject.toml`` that has ``[tool.bai-imagekit]`` wins;
``.bai-imagekit.toml`` wins over ``pyproject.toml`` in the same directory. A broken file is a
:class:`ConfigError` (``file:line: error: …``, exit 2).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ..errors import UsageError
from ..findings import display_path
from .model import ConfigFile

FILE_NAME = ".bai-imagekit.toml"
PYPROJECT = "pyproject.toml"
TOOL_TABLE = ("tool", "bai-imagekit")


class ConfigError(UsageError):
    """The configuration file cannot be used; ``str()`` is the whole ``file[:line]: error: …`` line."""


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    table: str | None  # "tool.bai-imagekit" for pyproject.toml, None for the whole file
    config: ConfigFile

    @property
    def source(self) -> str:
        return f"file:{display_path(self.path)}"


def _read_toml(path: Path) -> tuple[str, dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{display_path(path)}: error: cannot read: {exc}") from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"{display_path(path)}:{m.group(1)}:{m.group(2)}" if m else display_path(path)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"{where}: error: not valid TOML: {message}") from exc


def _has_tool_table(data: dict) -> bool:
    tool = data.get(TOOL_TABLE[0])
    return isinstance(tool, dict) and TOOL_TABLE[1] in tool


def find_config(start: Path | None = None) -> Path | None:
    """The file that configures *start* (default: the working directory), or None."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / FILE_NAME
        if candidate.is_file():
            return candidate
        pyproject = directory / PYPROJECT
        if pyproject.is_file() and _has_tool_table(_read_toml(pyproject)[1]):
            return pyproject
    return None


def _line_of(text: str, tables: tuple[str, ...], key: str | None) -> int | None:
    """Best effort: the line of *key* inside the table *tables* (tomllib gives no positions)."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join('(?:' + re.escape(t) + '|"' + re.escape(t) + '")' for t in tables)
                        + r"\s*\]\s*(#.*)?$") if tables else None
    start = 0
    if header is not None:
        start = next((i + 1 for i, line in enumerate(lines) if header.match(line)), 0)
    if key is None:
        return start or None
    pattern = re.compile(r'^\s*(?:[\w.-]+\.)?("?)' + re.escape(key) + r'\1\s*=')
    inline = re.compile(r'[{,]\s*("?)' + re.escape(key) + r'\1\s*=')
    for i in range(start, len(lines)):
        if pattern.match(lines[i]) or inline.search(lines[i]):
            return i + 1
    return _line_of(text, (*tables, key), None) if not key.isdigit() else None  # the key may be a [table]


def _describe(error: dict, prefix: tuple[str, ...]) -> tuple[tuple[str, ...], str | None, str]:
    loc = tuple(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        table, key = loc[:-1], loc[-1]
        where = "[" + ".".join((*prefix, *table)) + "]" if (prefix or table) else "the top-level table"
        return (*prefix, *table), key, f"unknown key {key!r} in {where}"
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "enum":
        msg = f"{error['input']!r}: " + msg.replace("Input should be", "expected")
    elif error["type"].endswith("_type") or error["type"] == "missing":
        msg = msg.replace("Input should be", "expected")
    dotted = ".".join(loc)
    return (*prefix, *loc[:-1]), loc[-1] if loc else None, f"{dotted}: {msg}" if dotted else msg


def load_config(path: Path) -> LoadedConfig:
    """Read and check *path* (a ``.bai-imagekit.toml``-style file, or a ``pyproject.toml``)."""
    text, data = _read_toml(path)
    prefix: tuple[str, ...] = ()
    if path.name == PYPROJECT:
        if not _has_tool_table(data):
            raise ConfigError(f"{display_path(path)}: error: no [tool.bai-imagekit] table")
        data, prefix = data["tool"]["bai-imagekit"], TOOL_TABLE
        if not isinstance(data, dict):
            raise ConfigError(f"{display_path(path)}: error: tool.bai-imagekit must be a table")
    try:
        config = ConfigFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        tables, key, message = _describe(first, prefix)
        line = _line_of(text, tables, key)
        where = display_path(path) + (f":{line}" if line else "")
        more = len(exc.errors()) - 1
        raise ConfigError(f"{where}: error: {message}" + (f" (and {more} more problem(s))" if more else "")) from exc
    _check_rule_ids(config, path, text, prefix)
    return LoadedConfig(path.resolve(), ".".join(prefix) or None, config)


def _check_rule_ids(config: ConfigFile, path: Path, text: str, prefix: tuple[str, ...]) -> None:
    from ..rules import load_all
    from ..rules.catalogue import RULES
    from ..rules.dockerfile_rules import UNSUPPRESSIBLE

    load_all()
    for table, ids in (("severity", config.rules.severity), ("disabled", config.rules.disabled)):
        for rule_id in ids:
            problem = None
            if rule_id not in RULES:
                problem = f"unknown rule {rule_id} in [{'.'.join((*prefix, 'rules', table))}] (see docs/rules.md)"
            elif table == "disabled" and rule_id in UNSUPPRESSIBLE:
                problem = f"{rule_id} cannot be disabled (it reports a broken suppression comment)"
            if problem:
                line = _line_of(text, (*prefix, "rules", table), rule_id)
                raise ConfigError(f"{display_path(path)}{f':{line}' if line else ''}: error: {problem}")
