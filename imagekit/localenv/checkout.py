"""Where this repository's test set-up keeps things: the one place that knows the checkout's root.

The product (``imagekit`` outside ``localenv``) never looks for a checkout; the test set-up points
it at the checkout's caches through the product's own environment variables (:func:`product_env`).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache"
#: the krunner bundle the tests build and use (``bai-imagekit krunner build`` output)
BUNDLE_DIR = CACHE_DIR / "krunner-bundle"
WEBTERM_ASSETS_DIR = CACHE_DIR / "webterm-assets"
TEST_IMAGES_DIR = REPO_ROOT / "tests" / "images"


def product_env() -> dict[str, str]:
    """The environment under which ``bai-imagekit`` uses the test set-up's bundle and base image."""
    from imagekit.bundle import BUNDLE_DIR_ENV
    from imagekit.bundle.debian_base import BASE_IMAGE_ENV

    from .base_image import BASE_IMAGE_TAG

    return {BUNDLE_DIR_ENV: str(BUNDLE_DIR), BASE_IMAGE_ENV: BASE_IMAGE_TAG}
