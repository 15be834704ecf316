"""The issue-15 probes as plain functions: ``probe_x(kernel) -> Figures``.

Used by the tests in this directory (which assert on the figures) and by
``benchmarks/reliability_compare.py`` (which prints ours beside upstream's runner). Every wait is
bounded; a runner that wedged or died is a figure (``wedged (>N s)``, ``container exited``).
"""

from __future__ import annotations

import json
import signal
import time

from imagekit.harness.client import ChannelTimeout

from . import fuzz
from .figures import Figures, exited, wedged
from .kernel import ProbeKernel, wait_for
from .memory import MemoryUnavailable, mib

#: services a fuzzed start-service may have started (stopped before memory is compared)
FUZZ_SERVICES = ("sshd", "ttyd", "jupyter", "jupyterlab", "m")


def _stop_services(kernel: ProbeKernel) -> None:
    c = kernel.client(fresh=True)
    for name in FUZZ_SERVICES:
        c.send("shutdown-service", json.dumps(name))
    time.sleep(1.0)


def probe_fuzz(kernel: ProbeKernel, seed: int, count: int = 10_000, *, warmup: int = 1000,
               recover_timeout: float = 30.0, drain_timeout: float = 60.0, pace: int = 16) -> Figures:
    """*count* fuzzed messages of *seed*, one ``interrupt``, then a query that must be answered.

    *pace* 0 sends flat out (the issue's probe); otherwise at most *pace* serial ops wait unanswered.

    Memory: ``idle`` is sampled after a warm-up round of *warmup* messages (another seed), so
    one-time growth (the REPL's module index for completion, the runner's first pydantic models,
    a service the warm-up started) is not counted as a leak; services the fuzz started are shut
    down before both samples. Anon memory of the container's cgroup (page cache excluded)."""
    figs = Figures("fuzz", kernel.runner.value, {"seed": seed, "messages": count})
    kernel.close_client()
    port_in, port_out = kernel.kc.repl_in_port, kernel.kc.repl_out_port
    if warmup:
        fuzz.run_messages(port_in, port_out, fuzz.generate(seed + 1_000_003, fuzz.FuzzConfig(count=warmup)),
                          alive=kernel.alive, recover_timeout=recover_timeout, drain_timeout=drain_timeout)
    if not kernel.alive():
        figs["outcome"] = exited(kernel.exit_code())
        return figs.judge(False, f"{exited(kernel.exit_code())} during the warm-up")
    _stop_services(kernel)
    kernel.close_client()
    idle = kernel.memory.idle()
    t0 = time.monotonic()
    with kernel.memory.watch() as watch:
        result = fuzz.run_messages(port_in, port_out, fuzz.generate(seed, fuzz.FuzzConfig(count=count)),
                                   alive=kernel.alive, recover_timeout=recover_timeout, drain_timeout=drain_timeout,
                                   pace=pace)
    figs["seconds"] = round(time.monotonic() - t0, 1)
    figs["sent"] = result.sent
    figs["replies_missing"] = dict(result.missing)
    figs["serial_unanswered"] = result.serial_missing
    figs["query_answered_after_interrupt_s"] = result.seconds_to_answer if result.marker_answered \
        else wedged(recover_timeout)
    figs["build_ops"] = result.ops["build"]
    figs["build_ended"] = result.received["build-finished"]  # the rest were folded into `finished`
    figs["idle_anon_mib"] = mib(idle.anon)
    figs["peak_over_idle_mib"] = mib(watch.peak.anon - idle.anon)
    if not result.alive:
        figs["outcome"] = exited(kernel.exit_code())
        return figs.judge(False, exited(kernel.exit_code()))
    _stop_services(kernel)
    kernel.close_client()
    try:
        after, seconds = kernel.memory.back_to(idle, within=0.10, slack=0, timeout=20)
        figs["after_anon_mib"] = mib(after.anon)
        figs["memory_back_within_10pct_s"] = round(seconds, 1) if seconds is not None else "no (20 s)"
    except MemoryUnavailable as exc:
        figs["after_anon_mib"] = str(exc)
        seconds = None
    if result.error:
        figs.note(result.error)
    ok = result.ok and seconds is not None
    return figs.judge(ok, result.summary() + ("" if seconds is not None else "; memory not back within 10%"))


def probe_queued_prompts(kernel: ProbeKernel, timeout: float = 15.0) -> Figures:
    """The minimised fuzz wedge: two cells that wait for input are queued, one ``interrupt``,
    then a query. The query must be answered and each cell must end."""
    figs = Figures("queued prompts + interrupt", kernel.runner.value)
    c = kernel.client(fresh=True, timeout=timeout)
    c.send("code", "input()")
    c.send("code", "input()")
    try:
        c.recv({"waiting-input"}, timeout=timeout)
    except ChannelTimeout:
        figs.note("no waiting-input for the first cell")
    c.interrupt()
    t0 = time.monotonic()
    c.send("code", "print('after-interrupt')")
    ends = []
    try:
        while len(ends) < 3:  # both cells and the query; their output is stashed meanwhile
            _, payload = c.recv({"finished"}, timeout=max(0.1, t0 + timeout - time.monotonic()))
            ends.append(json.loads(payload).get("exitCode"))
    except ChannelTimeout:
        pass
    out = b"".join(p for k, p in c.drain_stash() if k == "stdout")
    answered = b"after-interrupt" in out and len(ends) == 3
    figs["cells_ended"] = len(ends)
    figs["exit_codes"] = ends
    figs["query_answered_s"] = round(time.monotonic() - t0, 2) if answered else wedged(timeout)
    if not kernel.alive():
        return figs.judge(False, exited(kernel.exit_code()))
    return figs.judge(answered, "answered" if answered else f"later query {wedged(timeout)}")


def probe_runner_stopped(kernel: ProbeKernel, timeout: float = 20.0) -> Figures:
    """User code sends SIGSTOP to the runner; a later query must be answered."""
    figs = Figures("SIGSTOP to the runner", kernel.runner.value)
    c = kernel.client(fresh=True, timeout=timeout)
    code = ("import os, signal\n"
            "pid = os.getppid()\n"
            "try:\n    os.kill(pid, signal.SIGSTOP)\n    print('stopped', pid)\n"
            "except OSError as e:\n    print('refused', e.errno)\n")
    c.send("code", code)
    t0 = time.monotonic()
    try:
        c.collect(timeout=timeout)
        c.send("code", "print('still-here')")
        run = c.collect(timeout=timeout)
        answered = "still-here" in run.stdout
    except ChannelTimeout:
        answered = False
    pid = kernel.runner_pid()
    state = next((st for p, _, st, _ in kernel.processes() if p == pid), "?")
    figs["runner_state_after"] = state
    figs["query_answered_s"] = round(time.monotonic() - t0, 2) if answered else wedged(2 * timeout)
    if not answered and pid is not None and state == "T":
        import os

        os.kill(pid, signal.SIGCONT)  # leave the container stoppable
    if not kernel.alive():
        return figs.judge(False, exited(kernel.exit_code()))
    return figs.judge(answered, "answered" if answered else f"runner stopped, query {wedged(2 * timeout)}")


def wait_alive_gone(kernel: ProbeKernel, timeout: float) -> float | None:
    return wait_for(lambda: not kernel.alive(), timeout)
