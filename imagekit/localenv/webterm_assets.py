"""The web terminal assets for this repository's tests, cached in the checkout's ``.cache/webterm-assets``.

The fetching itself is the product's (:mod:`imagekit.bundle.webterm_assets`, part of ``krunner build``).
"""

from __future__ import annotations

from pathlib import Path

from imagekit.bundle.webterm_assets import WebtermAssetsError
from imagekit.bundle.webterm_assets import ensure_webterm_assets as _fetch

from ._common import LocalEnvError
from .checkout import WEBTERM_ASSETS_DIR


def ensure_webterm_assets(cache_dir: Path = WEBTERM_ASSETS_DIR) -> Path:
    """The directory with xterm.js, xterm.css and addon-fit.js (fetched from npm once)."""
    try:
        return _fetch(cache_dir)
    except WebtermAssetsError as exc:
        raise LocalEnvError(str(exc)) from exc
