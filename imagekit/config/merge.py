"""The configuration file merged with the command line: flags win, then the environment (only
``$BAI_IMAGEKIT_CA_BUNDLE``), then the file, then the built-in default. Every value keeps where
it came from (``default``, ``file:PATH``, ``flag``, ``env:NAME``) for ``validate --print-config``.

The merge fills the command's ``argparse`` namespace in place (an option left unset takes the
file's value), so the commands read their options as before.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .discover import ConfigError, LoadedConfig, find_config, load_config
from .rules import RuleConfig

CA_ENV = "BAI_IMAGEKIT_CA_BUNDLE"
DEFAULT, FLAG = "default", "flag"


@dataclass(frozen=True)
class Value:
    value: Any
    source: str  # default | flag | file:PATH | env:NAME


@dataclass(frozen=True)
class Key:
    name: str  # as in the file
    attr: str  # the argparse destination
    commands: tuple[str, ...]  # the commands that take it
    defaults: dict[str, Any]  # command -> built-in default (missing: None)


KEYS = (
    Key("fail-on", "fail_on", ("validate",), {"validate": "error"}),
    Key("runner", "runner", ("validate", "build", "test"), {"test": "krunner"}),
    Key("max-size", "max_size", ("validate",), {}),
    Key("ca-bundle", "ca_bundle", ("build",), {}),
)


@dataclass
class Settings:
    command: str
    config: LoadedConfig | None
    values: dict[str, Value] = field(default_factory=dict)
    rules: RuleConfig = field(default_factory=RuleConfig)

    @property
    def config_file(self) -> Path | None:
        return self.config.path if self.config else None


def add_config_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--config", metavar="FILE", default=None,
                   help="the configuration file (default: .bai-imagekit.toml or pyproject.toml's [tool.bai-imagekit], "
                   "looked for from the working directory upward; see docs/config.md)")
    g.add_argument("--no-config", action="store_true", help="read no configuration file")


def _load(args: argparse.Namespace) -> LoadedConfig | None:
    if getattr(args, "no_config", False):
        return None
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"{args.config}: error: --config: no such file")
        return load_config(path)
    found = find_config()
    return load_config(found) if found else None


def _file_value(loaded: LoadedConfig, key: Key) -> Any:
    value = getattr(loaded.config, key.attr)
    if value is None:
        return None
    value = getattr(value, "value", value)  # enums as their text
    if key.name == "ca-bundle" and value not in ("auto", "none"):
        value = str((loaded.path.parent / value).resolve())  # relative to the file, not the working directory
    return value


def merge(args: argparse.Namespace, command: str, environ: dict[str, str] | None = None) -> Settings:
    """Load the configuration for *command* and fill *args* in place; flags win."""
    env = os.environ if environ is None else environ
    loaded = _load(args)
    settings = Settings(command, loaded)
    for key in KEYS:
        takes = command in key.commands
        flag = getattr(args, key.attr, None) if takes else None
        from_file = _file_value(loaded, key) if loaded else None
        if flag is not None:
            value = Value(flag, FLAG)
        elif key.name == "ca-bundle" and env.get(CA_ENV):
            value = Value(env[CA_ENV], f"env:{CA_ENV}")
        elif from_file is not None:
            value = Value(from_file, loaded.source)  # type: ignore[union-attr]
            if takes:
                setattr(args, key.attr, from_file)
        else:
            value = Value(key.defaults.get(command), DEFAULT)
            if takes and value.value is not None:
                setattr(args, key.attr, value.value)
        settings.values[key.name] = value
    _merge_build_args(args, command, loaded, settings)
    if loaded:
        rules = loaded.config.rules
        settings.rules = RuleConfig(dict(rules.severity), dict(rules.disabled))
        for rule_id, severity in sorted(rules.severity.items()):
            settings.values[f"rules.severity.{rule_id}"] = Value(severity.value, loaded.source)
        for rule_id, reason in sorted(rules.disabled.items()):
            settings.values[f"rules.disabled.{rule_id}"] = Value(reason, loaded.source)
    return settings


def _merge_build_args(args: argparse.Namespace, command: str, loaded: LoadedConfig | None, settings: Settings) -> None:
    from_file = dict(loaded.config.build_args) if loaded else {}
    flags: dict[str, str] = {}
    if command == "build":
        for item in getattr(args, "build_arg", []) or []:
            k, sep, v = item.partition("=")
            if sep and k:
                flags[k] = v
        # the file's first: a later --build-arg KEY=… overrides the same key
        args.build_arg = [f"{k}={v}" for k, v in from_file.items()] + list(getattr(args, "build_arg", []) or [])
    for k in sorted({*from_file, *flags}):
        settings.values[f"build-args.{k}"] = Value(flags[k], FLAG) if k in flags else Value(from_file[k], loaded.source)  # type: ignore[union-attr]
