"""The console scripts answer --help and --version without touching Docker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(sys.executable).parent


@pytest.mark.parametrize("script", ["krunner", "bai-imagekit"])
@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_console_scripts(script, flag):
    exe = SCRIPTS / script
    if not exe.exists():
        exe = Path(shutil.which(script) or script)
    out = subprocess.run([str(exe), flag], capture_output=True, text=True, env=dict(os.environ), timeout=30)
    assert out.returncode == 0, out.stderr
    text = out.stdout.lower()
    assert ("usage" in text) if flag == "--help" else ("0.1.0" in text)


def test_krunner_without_arguments_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "krunner"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "missing <runtime-type>" in out.stderr
