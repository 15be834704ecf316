"""Fixtures of the reliability suite (marker ``reliability``; docs/reliability.md).

* ``ours`` – a kernel of our runner (bundle + the checkout's krunner) in ``bai-test/python``,
  one per module; a probe that breaks it asks ``fresh_ours`` instead.
* ``start_kernel(runner, image=…)`` – any runner in any image, stopped at the end of the test;
  ``Runner.UPSTREAM`` is upstream's runner as deployed (needs ``bai-ref/python``, whose
  kernelspec upstream's python runtime needs; built through the ``reference_image`` fixture).
* every probe's :class:`~tests.reliability.figures.Figures` are printed again at the end of the
  session, so CI logs carry the figures of each run (seeds included).
"""

from __future__ import annotations

import pytest

from .figures import RECORDED
from .kernel import (
    REFERENCE_IMAGE,
    REFERENCE_RUNTIME,
    TEST_IMAGE,
    TEST_RUNTIME,
    ProbeKernel,
    Runner,
)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/reliability/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)
            item.add_marker(pytest.mark.docker)


def pytest_terminal_summary(terminalreporter):
    if not RECORDED:
        return
    terminalreporter.section("reliability figures")
    for figs in RECORDED:
        terminalreporter.write_line(figs.render())


@pytest.fixture
def start_kernel(localenv, request):
    """``start_kernel(Runner.OURS)`` / ``start_kernel(Runner.UPSTREAM)`` → a ready :class:`ProbeKernel`.

    Upstream's runner is started in the reference image (the same image for ours, when a test
    compares); our runner defaults to the lighter test image."""
    started: list[ProbeKernel] = []

    def start(runner: Runner = Runner.OURS, image: str | None = None, **kwargs) -> ProbeKernel:
        if image is None and runner is Runner.UPSTREAM:
            image = request.getfixturevalue("reference_image")("python")
        image = image or TEST_IMAGE
        runtime = REFERENCE_RUNTIME if image == REFERENCE_IMAGE else kwargs.pop("runtime", TEST_RUNTIME)
        kernel = ProbeKernel.start(runner, image, runtime, **kwargs)
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        kernel.stop()


@pytest.fixture(scope="module")
def ours(localenv):
    """A module-wide kernel of our runner; probes that leave it broken use ``fresh_ours``."""
    kernel = ProbeKernel.start(Runner.OURS, TEST_IMAGE, TEST_RUNTIME)
    try:
        yield kernel
    finally:
        kernel.stop()


@pytest.fixture
def fresh_ours(start_kernel):
    return start_kernel(Runner.OURS)
