"""The issue-15 reliability probes against our runner and upstream's, in one run; a markdown table.

    .venv/bin/python benchmarks/reliability_compare.py [--image bai-ref/python:latest] [--fuzz-count 10000]
        [--only fuzz,sigstop,...] [--json out.json]

Both runners run in kernels of the same image, started the way the agent starts kernels
(tests/reliability/kernel.py): ours is the krunner bundle with this checkout's krunner; upstream's
is the stock runner as a Backend.AI 26.9 agent deploys it – PyPI ``backend.ai-krunner-static-gnu``
4.4.0 (the volume) with ``backend.ai-kernel``/``backend.ai-kernel-helper`` 26.9.6 bound over it
(``bai-imagekit krunner install --stock``; installed on first use). Every probe gets a fresh kernel,
so one that crashes or wedges a runner does not spill into the next, and every probe runs under a
hard deadline: a probe that does not return is recorded as ``wedged (>N s)``.

The probes are the functions of tests/reliability/probes.py (and tests/reliability/flood.py for the
flood rows), the same the reliability suite asserts on. Run on demand; nothing here is a test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imagekit.bundle.stock import STOCK_KERNEL, STOCK_KRUNNER  # noqa: E402
from tests.reliability import probes  # noqa: E402
from tests.reliability.figures import Figures, exited, wedged  # noqa: E402
from tests.reliability.kernel import (  # noqa: E402
    REFERENCE_IMAGE,
    REFERENCE_RUNTIME,
    ProbeKernel,
    Runner,
)

Probe = Callable[[ProbeKernel], Figures]


def _flood_probes() -> dict[str, tuple[str, str, Probe, float]]:
    try:
        from tests.reliability import flood
    except ImportError as exc:  # the flood probes are another engineer's; the table says so
        say(f"flood probes unavailable: {exc}")
        return {}
    rows = {}
    for key, name, goal, limit in (
        ("flood-stall", "flood_stalled_reader", "no bytes lost; memory bounded; writer paused", 300),
        ("flood-away", "flood_disconnect_reconnect", "memory bounded; writer paused while nobody reads; a loss only announced and bounded; resumes", 300),
        ("agent-restart", "agent_restart_mid_stream", "session kept; output resumes; a loss only announced and bounded", 300),
        ("interrupt-paused", "interrupt_while_paused", "interrupt reaches a paused writer", 120),
    ):
        fn = getattr(flood, name, None)
        if fn is not None:
            rows[key] = (name.replace("_", " "), goal, fn, limit)
    return rows


def probe_table(fuzz_count: int) -> dict[str, tuple[str, str, Probe, float]]:
    """key → (row title, goal, probe, hard deadline in seconds)."""
    rows: dict[str, tuple[str, str, Probe, float]] = {
        "fuzz": (f"{fuzz_count:,} fuzzed messages (seed 1, flat out), one interrupt, a query",
                 "no crash; every owed reply; query answered; memory back within 10% of idle",
                 lambda k: probes.probe_fuzz(k, 1, fuzz_count, pace=0, drain_timeout=30), 480),
        "queued-prompts": ("minimised fuzz case: a prompt, a queued cell, one interrupt, a query",
                           "query answered", probes.probe_queued_prompts, 60),
        "complete-100k": ("`complete` during a 100 KB `code`", "both answer, nothing wedges",
                          lambda k: probes.probe_complete_during_large_query(k, 100_000), 150),
        "complete-1m": ("`complete` during a 1 MB `code`", "both answer, nothing wedges",
                        lambda k: probes.probe_complete_during_large_query(k, 1_000_000), 150),
        "complete-10m": ("`complete` during a 10 MB `code`", "both answer, nothing wedges",
                         lambda k: probes.probe_complete_during_large_query(k, 10_000_000), 150),
        "closed-fds": ("user code closes fds 1 and 2", "output back, with a notice", probes.probe_closed_fds, 200),
        "pkill": ("user code runs `pkill -f python`", "runner survives; the user's python dies",
                  probes.probe_pkill_python, 200),
        "sigstop": ("user code sends SIGSTOP to the runner", "runner resumed; next query answered",
                    probes.probe_runner_stopped, 90),
        "docker-stop": ("`docker stop` with batch background children, a service, a query child",
                        "SIGTERM to all, SIGKILL after grace; exit within 2 s", probes.probe_sigterm_reaping, 60),
    }
    rows.update(_flood_probes())
    return rows


def say(message: str) -> None:
    print(f"[reliability-compare] {message}", file=sys.stderr, flush=True)


def run_probe(runner: Runner, image: str, key: str, title: str, probe: Probe, limit: float) -> Figures:
    """A fresh kernel, the probe under a hard deadline, the kernel removed whatever happened."""
    try:
        kernel = ProbeKernel.start(runner, image, REFERENCE_RUNTIME if image == REFERENCE_IMAGE else ("python", None))
    except Exception as exc:  # noqa: BLE001 - a runner that does not come up is a figure
        return Figures(key, runner.value).judge(False, f"did not start: {str(exc)[:200]}")
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["figs"] = probe(kernel)
        except Exception as exc:  # noqa: BLE001 - the probe's failure is the figure
            box["error"] = exc

    thread = threading.Thread(target=work, name=f"probe-{key}", daemon=True)
    t0 = time.monotonic()
    thread.start()
    thread.join(limit)
    try:
        if thread.is_alive():
            figs = Figures(key, runner.value).judge(False, wedged(limit) if kernel.alive()
                                                    else exited(kernel.exit_code()))
        elif "error" in box:
            figs = Figures(key, runner.value).judge(
                False, exited(kernel.exit_code()) if not kernel.alive() else f"probe error: {box['error']!r}"[:200])
        else:
            figs = box["figs"]  # type: ignore[assignment]
        figs["probe_seconds"] = round(time.monotonic() - t0, 1)
    finally:
        try:
            kernel.stop()
        except Exception as exc:  # noqa: BLE001
            say(f"{runner.value} {key}: stopping the kernel failed: {exc}")
    say(f"{runner.value:8s} {key}: {figs.verdict}")
    return figs


def cell(figs: Figures) -> str:
    mark = "✅" if figs.ok else "❌"
    details = ", ".join(f"{k}={v}" for k, v in figs.values.items()
                        if k not in ("probe_seconds", "seed", "source_bytes") and v not in ("", None))
    return f"{mark} {figs.verdict}<br><sub>{details}</sub>".replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default=REFERENCE_IMAGE)
    p.add_argument("--fuzz-count", type=int, default=10_000)
    p.add_argument("--only", default="", help="comma-separated probe keys (default: all)")
    p.add_argument("--runners", default="ours,upstream")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    table = probe_table(args.fuzz_count)
    keys = [k for k in (args.only.split(",") if args.only else table) if k]
    runners = [Runner(r) for r in args.runners.split(",")]
    started = datetime.datetime.now(datetime.timezone.utc)
    results: dict[str, dict[str, Figures]] = {}
    for key in keys:
        title, goal, probe, limit = table[key]
        results[key] = {r.value: run_probe(r, args.image, key, title, probe, limit) for r in runners}

    print(f"Measured {started:%Y-%m-%d %H:%M} UTC by `benchmarks/reliability_compare.py` "
          f"(image `{args.image}`; upstream: `{STOCK_KRUNNER}` + `{'`, `'.join(STOCK_KERNEL)}`).\n")
    print("| probe | goal | " + " | ".join(r.value for r in runners) + " |")
    print("|---|---|" + "---|" * len(runners))
    for key in keys:
        title, goal, _, _ = table[key]
        print(f"| {title} | {goal} | " + " | ".join(cell(results[key][r.value]) for r in runners) + " |")
    if args.json:
        args.json.write_text(json.dumps({k: {r: f.as_json() for r, f in v.items()} for k, v in results.items()},
                                        indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
