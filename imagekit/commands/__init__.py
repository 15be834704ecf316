"""Subcommands of ``bai-imagekit``: each module has ``add_parser(subparsers)`` that sets ``handler`` (args -> exit code)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

#: the order ``--help`` lists commands in; modules not named here come after, alphabetically
ORDER = ("init", "build", "validate", "test", "run", "app", "stop", "policy", "krunner", "config")


def command_modules() -> list[ModuleType]:
    names = [i.name for i in pkgutil.iter_modules(__path__) if not i.name.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return [importlib.import_module(f"{__name__}.{n}") for n in names]
