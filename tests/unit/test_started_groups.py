"""The runner's record of the process groups it started (krunner/proc.py): what shutdown signals.

Real processes in their own sessions; the record must keep every group that still has members and
forget the empty ones, so that it does not grow with every job of a long session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from krunner import proc


@pytest.fixture
def groups():
    saved = set(proc.STARTED_GROUPS)
    proc.STARTED_GROUPS.clear()
    yield proc.STARTED_GROUPS
    proc.STARTED_GROUPS.clear()
    proc.STARTED_GROUPS.update(saved)


def test_empty_groups_are_forgotten_and_live_ones_kept(groups):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        proc.started_group(os.getpgid(sleeper.pid))
        for _ in range(3 * proc.PRUNE_GROUPS_AT):
            done = subprocess.Popen(["true"], start_new_session=True)
            proc.started_group(done.pid)  # its own session: the group id is its pid
            done.wait()
        assert len(groups) <= proc.PRUNE_GROUPS_AT
        assert sleeper.pid in groups  # still running: still ours to stop at shutdown
    finally:
        sleeper.kill()
        sleeper.wait()
