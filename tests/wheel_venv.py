"""The toolkit as a user gets it: a wheel built from the working tree, installed into a fresh venv.

The wheel is built from a copy of the working tree's files (tracked and new, not ignored), so
leftovers of earlier in-tree builds (``build/lib``) never end up in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: variables that would let the venv see the checkout or the test set-up's choices
LEAKY_ENV = ("PYTHONPATH", "BAI_IMAGEKIT_SERVICE_DEFS", "BAI_IMAGEKIT_BUNDLE_DIR", "BAI_IMAGEKIT_BASE_IMAGE",
             "BAI_IMAGEKIT_CA_BUNDLE", "VIRTUAL_ENV")


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
        expect: int | None = 0) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if expect is not None:
        assert out.returncode == expect, f"{argv} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out


def _source_copy(dest: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def install_wheel(tmp: Path) -> Path:
    """Build the wheel, install it into ``tmp/venv``; return the venv's ``bin`` directory."""
    source, dist, venv = tmp / "source", tmp / "dist", tmp / "venv"
    source.mkdir()
    _source_copy(source)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
         "-w", str(dist), str(source)], tmp)
    (wheel,) = dist.glob("bai_kernel_toolkit-*.whl")
    run([sys.executable, "-m", "venv", str(venv)], tmp)
    run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)], tmp)
    return venv / "bin"


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user with no checkout: none of the test set-up's variables."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}
    return {**env, "NO_COLOR": "1", **extra}
