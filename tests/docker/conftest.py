"""Docker fixtures: the local environment is prepared once; containers are real kernels."""

from __future__ import annotations

import pytest

from tests.kernels import DockerKernel

#: built for every docker test session; heavier images are prepared by the fixtures that need them
CORE_IMAGES = ("python", "gcc", "nodejs")


@pytest.fixture(scope="session")
def localenv():
    """Engine, base image, test images and the dev krunner volume (built once, cached by tag).

    If the engine cannot be started this fails the tests loudly; it never skips.
    """
    from imagekit.localenv.prepare import prepare

    try:
        prepare(images=CORE_IMAGES)
    except Exception as exc:  # noqa: BLE001 - report any environment failure as a test error
        pytest.fail(f"cannot prepare the local Docker environment: {exc}", pytrace=False)


def _kernel(image: str, runtime_type: str, runtime_path: str | None = None, **kwargs):
    kernel = DockerKernel(image, runtime_type, runtime_path, **kwargs)
    try:
        yield kernel
    finally:
        kernel.stop()


@pytest.fixture(scope="module")
def python_kernel(localenv):
    yield from _kernel("bai-test/python:latest", "python", "/usr/bin/python3")


@pytest.fixture(scope="module")
def shell_kernel(localenv):
    yield from _kernel("bai-test/python:latest", "shell")


@pytest.fixture(scope="module")
def gcc_kernel(localenv):
    yield from _kernel("bai-test/gcc:latest", "c", "/usr/bin/gcc")


@pytest.fixture(scope="module")
def nodejs_kernel(localenv):
    yield from _kernel("bai-test/nodejs:latest", "nodejs", "/usr/bin/node")
