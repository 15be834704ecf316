"""``validate --print-config``: the merged settings and where each value came from (text or json)."""

from __future__ import annotations

import json

from ..findings import display_path
from .merge import Settings

_UNSET = {"runner": "the image's own, else stock", "max-size": "no budget", "ca-bundle": "none"}


def _toml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string / bare word for these values


def render_text(settings: Settings) -> str:
    if settings.config is not None:
        where = display_path(settings.config.path) + (f" [{settings.config.table}]" if settings.config.table else "")
    else:
        where = "none"
    lines = [f"# bai-imagekit {settings.command}: configuration file: {where}"]
    tables: dict[str, list[str]] = {}
    for name, v in settings.values.items():
        table, _, key = name.rpartition(".")
        if v.value is None:
            shown = f"# {key} unset ({_UNSET.get(key, 'none')})"
        else:
            shown = f"{key} = {_toml(v.value)}"
        line = f"{shown:<40} # {v.source}"
        if table:
            tables.setdefault(table, []).append(line)
        else:
            lines.append(line)
    for table, rows in tables.items():
        lines += ["", f"[{table}]", *rows]
    return "\n".join(lines) + "\n"


def render_json(settings: Settings) -> str:
    doc = {
        "command": settings.command,
        "config_file": str(settings.config.path) if settings.config else None,
        "table": settings.config.table if settings.config else None,
        "values": {name: {"value": v.value, "source": v.source} for name, v in settings.values.items()},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def render(settings: Settings, fmt: str) -> str:
    return render_json(settings) if fmt == "json" else render_text(settings)
