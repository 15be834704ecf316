"""The kernel's intrinsic web terminal: ttyd's HTTP + WebSocket protocol, served by krunner.

The package itself only locates the assets (the runner imports it at start-up, so it
stays light); the server lives in :mod:`.server` and is the only module that imports
the ``websockets`` library, in the web terminal's own process.

``python -m krunner.webterm --port 7681`` (see :mod:`krunner.webterm.__main__`
and docs/architecture.md).
"""

import os
import sys
from pathlib import Path

DEFAULT_PORT = 7681
DEFAULT_ASSETS_DIR = "/opt/kernel/webterm-assets"
ASSETS_ENV = "KRUNNER_WEBTERM_ASSETS"


def find_assets() -> Path | None:
    """Where the xterm.js assets are: ``$KRUNNER_WEBTERM_ASSETS``, ``/opt/kernel/webterm-assets``
    (our harness mounts the bundle's tools there) or the krunner volume's own ``kernel/webterm-assets``
    (a stock agent mounts only the volume and its own /opt/kernel tools)."""
    explicit = os.environ.get(ASSETS_ENV)
    if explicit:
        return Path(explicit)
    for candidate in (Path(DEFAULT_ASSETS_DIR), Path(sys.prefix) / "kernel" / "webterm-assets"):
        if candidate.is_dir():
            return candidate
    return None

__all__ = ["ASSETS_ENV", "DEFAULT_ASSETS_DIR", "DEFAULT_PORT", "find_assets"]
