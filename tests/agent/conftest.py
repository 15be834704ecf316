"""Fixtures for the tests driven by the stock Backend.AI agent's own code (marker ``agent``).

The agent (``backend.ai-agent`` 26.9.6 from PyPI) needs Python 3.13, so it lives in its own venv
(:mod:`imagekit.localenv.agent_venv`) and runs ``stock_agent_driver.py`` there; the tests read the
driver's JSON. Our krunner reaches the agent the way an operator installs it: the wheel from
``bai-imagekit krunner package`` replaces the stock ``backend.ai-krunner-static-gnu``, and the
agent's own ``prepare_krunner_env()`` creates the volume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / ".cache" / "agent-package"
#: the kernel user: the agent's non-root path (as root the agent's entrypoint.sh takes another branch)
KERNEL_UID = "1000"


@dataclass(frozen=True)
class StockAgent:
    python: Path
    volumes: dict[str, str]
    volume: str
    wheel: Path

    def run(self, image: str, steps: list[dict], *extra: str, timeout: float = 900) -> dict:
        """Start a kernel from *image* as the agent does, run *steps*, destroy it; the driver's JSON."""
        from imagekit.localenv.agent_venv import run_driver

        return run_driver(
            self.python, "run", "--image", image, "--krunner-volumes", json.dumps(self.volumes),
            "--kernel-uid", KERNEL_UID, "--kernel-gid", KERNEL_UID, "--steps", json.dumps(steps), *extra,
            timeout=timeout,
        )


@pytest.fixture(scope="session")
def stock_agent(localenv) -> StockAgent:
    """The agent venv with our krunner package installed and the agent's volume prepared."""
    from imagekit.bundle.agent_package import build_agent_package
    from imagekit.localenv.agent_venv import (
        ensure_agent_venv,
        run_driver,
        use_krunner_package,
    )
    from imagekit.localenv.krunner_mounts import ensure_krunner_bundle

    try:
        python = ensure_agent_venv()
        package = build_agent_package(ensure_krunner_bundle().tarball, PACKAGE_DIR)
        installed = use_krunner_package(python, package.wheel)
        volumes = run_driver(python, "prepare")
    except Exception as exc:  # noqa: BLE001 - any set-up failure fails the tests loudly
        pytest.fail(f"cannot prepare the stock agent: {exc}", pytrace=False)
    assert installed == package.version
    assert volumes.get("static-gnu") == package.volume, volumes
    return StockAgent(python=python, volumes=volumes, volume=package.volume, wheel=package.wheel)
