"""Docker fixtures: the local environment is prepared once; containers are real kernels."""

from __future__ import annotations

import pytest

from tests.kernels import DockerKernel

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
