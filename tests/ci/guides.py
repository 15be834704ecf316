"""The fenced blocks of a guide in docs/ (the way tests/docker/test_authoring_guide.py reads one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(guide: str, lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall((REPO / "docs" / guide).read_text()) if kind == lang]


def run_sh_blocks(guide: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Every ```sh block of *guide*, in order, in one ``bash -euo pipefail`` with ``bai-imagekit`` on PATH."""
    script = "\n".join(blocks(guide, "sh"))
    full_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1",
                **(env or {})}
    full_env.pop("BAI_IMAGEKIT_CA_BUNDLE", None)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=full_env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"stdout:\n{out.stdout[-5000:]}\nstderr:\n{out.stderr[-5000:]}"
    return out
