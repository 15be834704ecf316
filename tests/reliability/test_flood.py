"""Output flow control end to end (issue 15, the flood rows; docs/protocol.md, "Flow control").

Our runner, in a real container, with the agent's side stalling, going away, and restarting while
user code floods stdout. CI floods :data:`~tests.reliability.flood.CI_TOTAL` bytes (the issue's
2 GB goes through ``benchmarks/reliability_compare.py``): the runner's bounds (8 MiB queued +
32 records in ZeroMQ) are far below either size, so the smaller flood exercises the same pauses.
"""

from __future__ import annotations

import pytest

from . import flood
from .figures import assert_peak_over_idle, assert_recovered

pytestmark = pytest.mark.timeout(300)


def test_a_stalled_reader_pauses_the_writer_and_loses_nothing(ours):
    figs = flood.flood_stalled_reader(ours, total=flood.CI_TOTAL, stall=4.0).record()
    assert figs["exit_code"] == 0, figs.render()
    assert figs["bytes_lost"] == 0 and figs["intact"], figs.render()
    assert_peak_over_idle(figs, 64)
    # back-pressure reached the writer: one of its writes sat for most of the stall
    assert figs["worst_write_s"] is not None and figs["worst_write_s"] >= 2.0, figs.render()
    # the agent's poll is answered while output is paused (ahead of the queued output)
    assert figs["status_while_paused_s"] is not None and figs["status_while_paused_s"] < 2.0, figs.render()


def test_an_agent_away_mid_flood_pauses_the_writer_within_the_memory_bound(ours):
    figs = flood.flood_disconnect_reconnect(ours, total=flood.CI_TOTAL, away=4.0).record()
    assert figs["exit_code"] == 0, figs.render()
    assert_peak_over_idle(figs, 64)
    assert figs["worst_write_s"] >= 2.0, figs.render()  # paused while nobody was attached
    # what a vanished agent's connection held is gone with it; the runner's share is bounded
    # (docs/protocol.md, "Flow control"): the runner's share plus docker-proxy's and the reader's buffers
    assert 0 <= figs["bytes_lost"] <= flood.disconnect_loss_bound(), figs.render()
    assert figs["bytes_lost"] == 0 or figs["loss_notices"] >= 1, figs.render()  # never a silent loss
    assert_recovered(figs, 5.0)


def test_an_agent_restart_mid_stream_keeps_the_session(ours):
    figs = flood.agent_restart_mid_stream(ours).record()
    assert figs["exit_code"] == 0 and figs["session_kept"], figs.render()
    assert 0 <= figs["bytes_lost"] <= flood.disconnect_loss_bound(), figs.render()
    assert figs["bytes_lost"] == 0 or figs["loss_notices"] >= 1, figs.render()
    assert_recovered(figs, 5.0)


def test_interrupt_reaches_a_paused_writer(ours):
    figs = flood.interrupt_while_paused(ours).record()
    assert figs.ok, figs.render()
    assert figs["seconds_to_finish"] < 10.0, figs.render()
    assert figs["complete_while_paused_s"] is not None and figs["complete_while_paused_s"] < 4.0, figs.render()
