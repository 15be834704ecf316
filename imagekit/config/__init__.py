"""The project configuration: ``.bai-imagekit.toml`` or ``[tool.bai-imagekit]`` in ``pyproject.toml``
(docs/config.md).

* :mod:`.model` – the file's keys (pydantic, strict) and its JSON schema;
* :mod:`.discover` – finding it from the working directory upward, reading it, its errors;
* :mod:`.merge` – flags win over the file; every value's source;
* :mod:`.rules` – severity overrides and disabled rules, applied to every target's findings;
* :mod:`.show` – ``validate --print-config``.

A command takes the configuration by calling :func:`add_config_options` on its parser; the CLI
then merges before the handler runs (:func:`configured`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from .discover import ConfigError, find_config, load_config
from .merge import Settings, merge
from .merge import add_config_options as _add_options
from .rules import RuleConfig, active_rules, apply_active, use_rules

__all__ = [
    "ConfigError", "RuleConfig", "Settings", "active_rules", "add_config_options", "apply_active", "configured",
    "find_config", "load_config", "merge",
]


def add_config_options(parser: argparse.ArgumentParser, command: str) -> None:
    """``--config FILE`` / ``--no-config`` on *parser*; its command then runs with the configuration."""
    _add_options(parser)
    parser.set_defaults(config_command=command)


@contextmanager
def configured(args: argparse.Namespace) -> Iterator[None]:
    """Merge the configuration into *args* (``args.settings``) and activate its rule settings for the
    handler; a no-op for commands that take no configuration."""
    command = getattr(args, "config_command", None)
    if command is None:
        yield
        return
    args.settings = merge(args, command)
    with use_rules(args.settings.rules):
        yield
