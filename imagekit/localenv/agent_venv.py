"""A Python 3.13 virtualenv with the stock Backend.AI agent from PyPI, for this repository's tests.

The agent-driven tests (marker ``agent``) and the benchmark use the agent's own code as the
client: ``backend.ai-agent``, ``backend.ai-kernel`` and ``backend.ai-kernel-binary`` (its
``entrypoint.sh``, static tools and krunner extractor image). Which krunner the agent finds
is the installed ``backend.ai-krunner-static-gnu``: the stock one from PyPI, or ours from
``bai-imagekit krunner package`` (:func:`use_krunner_package` switches between them).

Idempotent: the venv is made once (stamp = the requirements), a package is only reinstalled
when another one is installed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from ._common import LocalEnvError, file_lock, log
from .checkout import CACHE_DIR, REPO_ROOT

AGENT_VERSION = "26.9.6"
STOCK_KRUNNER = "backend.ai-krunner-static-gnu==4.4.0"
AGENT_REQUIREMENTS = (
    f"backend.ai-agent=={AGENT_VERSION}",
    f"backend.ai-kernel=={AGENT_VERSION}",
    f"backend.ai-kernel-binary=={AGENT_VERSION}",
    STOCK_KRUNNER,
)
DEFAULT_VENV = Path(os.environ.get("BAI_AGENT_VENV") or CACHE_DIR / "agent-venv")
DRIVER = REPO_ROOT / "tests" / "agent" / "stock_agent_driver.py"
PIP_TIMEOUT_SECONDS = 900


def find_python313() -> str:
    """``$BAI_AGENT_PYTHON``, pyenv's 3.13, or a working ``python3.13`` on PATH."""
    explicit = os.environ.get("BAI_AGENT_PYTHON")
    if explicit:
        return explicit
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13")))
    on_path = shutil.which("python3.13")
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        if subprocess.run([candidate, "-c", "pass"], capture_output=True, timeout=60).returncode == 0:
            return candidate
    raise LocalEnvError("no Python 3.13 found for the Backend.AI agent (set BAI_AGENT_PYTHON)")


def _pip(venv: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS,
    )
    if proc.returncode != 0:
        raise LocalEnvError(f"pip install {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def ensure_agent_venv(venv: Path = DEFAULT_VENV) -> Path:
    """The venv's python, with the stock agent installed."""
    stamp = venv / ".bai-agent-requirements"
    want = hashlib.sha256("\n".join(AGENT_REQUIREMENTS).encode()).hexdigest()[:16]
    with file_lock(f"agent-venv-{venv}"):
        if (venv / "bin" / "python").exists() and stamp.is_file() and stamp.read_text() == want:
            return venv / "bin" / "python"
        log(f"creating the Backend.AI agent venv {venv} (backend.ai-agent {AGENT_VERSION})…")
        if not (venv / "bin" / "python").exists():
            subprocess.run([find_python313(), "-m", "venv", str(venv)], check=True, timeout=120)
        _pip(venv, *AGENT_REQUIREMENTS)
        stamp.write_text(want)
    return venv / "bin" / "python"


def installed_krunner_version(python: Path) -> str:
    proc = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('backend.ai-krunner-static-gnu'))"],
        capture_output=True, text=True, timeout=60,
    )
    return proc.stdout.strip()


def use_krunner_package(python: Path, wheel: Path | None) -> str:
    """Install our krunner *wheel* into the agent venv, or the stock package when *wheel* is None.

    Returns the installed version (``4.4.0`` or ``4.4.0+bai.v<N>``).
    """
    venv = Path(python).parents[1]
    with file_lock(f"agent-venv-{venv}"):
        have = installed_krunner_version(python)
        if wheel is None:
            if have != STOCK_KRUNNER.split("==")[1]:
                log("agent venv: restoring the stock krunner package")
                _pip(venv, "--force-reinstall", "--no-deps", STOCK_KRUNNER)
        else:
            want = Path(wheel).name.split("-")[1]
            if have != want:
                log(f"agent venv: installing {Path(wheel).name}")
                _pip(venv, "--force-reinstall", "--no-deps", str(wheel))
        return installed_krunner_version(python)


def run_driver(python: Path, *args: str, timeout: float = 900) -> dict:
    """Run the stock-agent driver (tests/agent/stock_agent_driver.py) and return its JSON output.

    A run whose steps fail still prints its JSON (exit 1), which is returned for the caller to
    judge; only a driver that prints no JSON raises.
    """
    proc = subprocess.run([str(python), str(DRIVER), *args], capture_output=True, text=True, timeout=timeout,
                          cwd="/")  # never the checkout: its ai/ must not shadow the agent's packages
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise LocalEnvError(f"agent driver {' '.join(args[:1])} failed (exit {proc.returncode}):\n"
                            f"{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}") from None
