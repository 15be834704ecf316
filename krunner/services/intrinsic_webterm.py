"""The intrinsic web terminal (service name ``ttyd``): a bundled ttyd binary, else krunner's own.

krunner's web terminal (:mod:`krunner.webterm`) speaks ttyd's protocol and is
used when its front-end assets are present; an image or bundle that ships a
real ``/opt/kernel/ttyd`` gets that instead, started the way upstream does.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..webterm import find_assets
from .launch import LaunchSpec, python_module_argv

KERNEL_DIR = Path(os.environ.get("KRUNNER_KERNEL_DIR", "/opt/kernel"))
SHELLS = ("/bin/zsh", "/bin/bash", "/bin/ash", "/bin/sh")


def _shell() -> str:
    return next((s for s in SHELLS if Path(s).exists()), "/bin/sh")


def available() -> bool:
    return (KERNEL_DIR / "ttyd").exists() or find_assets() is not None


def launch(port: int) -> LaunchSpec | None:
    shell = _shell()
    ttyd = KERNEL_DIR / "ttyd"
    if ttyd.exists():
        return LaunchSpec(argv=[str(ttyd), "-W", "-p", str(port), shell], launch_timeout=10)
    assets = find_assets()
    if assets is not None:
        argv = python_module_argv("krunner.webterm", "--port", str(port), "--shell", shell, "--assets", str(assets))
        return LaunchSpec(argv=argv, launch_timeout=10)
    return None
