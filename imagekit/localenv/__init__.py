"""This repository's test set-up: engine, debootstrap base image, test images, krunner volumes.

It installs and starts things on the host (``dockerd``, ``debootstrap``) and knows the checkout
(:mod:`.checkout`); the product (the rest of ``imagekit``) does neither and never imports this
package.  Every ``ensure_*`` function is idempotent and cached (by image label / volume name),
and safe to call concurrently from several processes (file locks, :mod:`imagekit.locks`).
"""

from ._common import LocalEnvError
from .base_image import BASE_IMAGE_TAG, ensure_base_image
from .engine import ensure_engine
from .images import CONTEXT_HASH_LABEL, ImageBuildError, context_hash, ensure_image
from .krunner_dev import DEV_SITE_PACKAGES, dev_volume_name, ensure_dev_krunner_volume
from .test_images import TEST_IMAGES, ensure_test_images

__all__ = [
    "BASE_IMAGE_TAG",
    "CONTEXT_HASH_LABEL",
    "DEV_SITE_PACKAGES",
    "TEST_IMAGES",
    "ImageBuildError",
    "LocalEnvError",
    "context_hash",
    "dev_volume_name",
    "ensure_base_image",
    "ensure_dev_krunner_volume",
    "ensure_engine",
    "ensure_image",
    "ensure_test_images",
]
