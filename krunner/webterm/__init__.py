"""The kernel's intrinsic web terminal: ttyd's HTTP + WebSocket protocol, served by krunner.

``python -m krunner.webterm --port 7681`` (see :mod:`krunner.webterm.__main__`
and docs/web-terminal.md).
"""

from .server import AssetError, ServerConfig, WebTermServer, load_assets

DEFAULT_PORT = 7681
DEFAULT_ASSETS_DIR = "/opt/kernel/webterm-assets"
ASSETS_ENV = "KRUNNER_WEBTERM_ASSETS"

__all__ = [
    "ASSETS_ENV",
    "DEFAULT_ASSETS_DIR",
    "DEFAULT_PORT",
    "AssetError",
    "ServerConfig",
    "WebTermServer",
    "load_assets",
]
