"""Hostile user code (issue 15): it stops the runner, closes its own output, kills every python,
asks for completion while a large cell is being written. Each probe is bounded in time and
asserts what the issue's table asks for. (Moved here from tests/unit/test_runner_host.py and
tests/docker/test_kernel_protocol.py, now against real containers.)
"""

from __future__ import annotations

import pytest

from tests import scenarios

from .figures import assert_goal
from .probes import (
    probe_closed_fds,
    probe_complete_during_large_query,
    probe_pkill_python,
    probe_runner_stopped,
)


def test_sigstop_to_the_runner_is_undone(fresh_ours):
    """User code sends SIGSTOP to the runner: its root keeper resumes it, a later query is answered."""
    figs = probe_runner_stopped(fresh_ours).record()
    assert_goal(figs)
    assert "resuming it" in fresh_ours.logs(), fresh_ours.logs()[-2000:]


def test_repl_that_closed_its_output_is_replaced(ours):
    """User code closing fds 1 and 2: the next query gets a new REPL, says so, and prints again."""
    figs = probe_closed_fds(ours).record()
    assert_goal(figs)


def test_pkill_python_spares_the_runner(fresh_ours):
    figs = probe_pkill_python(fresh_ours).record()
    assert_goal(figs)
    scenarios.pkill_python_spares_the_runner(fresh_ours.client(fresh=True))  # with the image's own pkill


@pytest.mark.parametrize("size", [100_000, 1_000_000, 10_000_000])
def test_complete_during_a_large_query_does_not_wedge(ours, size):
    """A `complete` sent while a large `code` frame is still being written to the REPL used to be
    written into the middle of it and wedge the REPL for good (query, completion and interrupt)."""
    figs = probe_complete_during_large_query(ours, size).record()
    assert_goal(figs)
