"""The suite's own instruments: the cgroup memory sampler sees what user code allocates."""

from __future__ import annotations

from .figures import Figures
from .memory import mib


def test_memory_sampler_sees_an_allocation(ours):
    c = ours.client()
    assert c.query("print('warm')", timeout=30).stdout == "warm\n"
    idle = ours.memory.idle()
    with ours.memory.watch() as watch:
        r = c.query("import time\nx = bytearray(64 << 20)\nx[::4096] = b'1' * len(x[::4096])\ntime.sleep(0.5)\ndel x",
                    timeout=30)
    assert r.exit_code == 0, r.stderr
    after, seconds = ours.memory.back_to(idle)
    figs = Figures("memory sampler", ours.runner.value, {
        "source": ours.memory.source, "idle_anon_mib": mib(idle.anon), "peak_over_idle_mib": mib(watch.peak.anon - idle.anon),
        "after_anon_mib": mib(after.anon), "seconds_to_recover": seconds, "samples": watch.samples,
    }).record()
    assert idle.anon > 0 and watch.samples > 0, figs.render()
    assert watch.peak.anon - idle.anon >= 60 << 20, figs.render()
    assert seconds is not None, figs.render()
