"""The runner's start-up stays light: only the web terminal's own process imports ``websockets``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, pkgutil, sys
import krunner.__main__, krunner.app, krunner.runner, krunner.terminal, krunner.webterm
import krunner.services
for module in pkgutil.iter_modules(krunner.services.__path__):
    importlib.import_module("krunner.services." + module.name)
print(sorted(m for m in sys.modules if m.split(".")[0] == "websockets" or m.startswith("krunner.webterm.")))
"""


def test_runner_start_up_does_not_import_websockets() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_server_module_does() -> None:
    probe = "import sys, krunner.webterm.server; print('websockets.asyncio.server' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"
