"""Our krunner beside upstream's runner, both started and driven by the stock Backend.AI agent.

    .venv/bin/python benchmarks/agent_compare.py [--image bai-ref/python:latest] [--rounds 200] [--cold-starts 3]

One run measures both runners in kernels of the same image, started the way a stock agent
starts them (tests/agent/stock_agent_driver.py under the agent's Python 3.13 venv, see
imagekit/localenv/agent_venv.py):

  * ours: our ``backend.ai-krunner-static-gnu`` wheel (``bai-imagekit krunner package``,
    built from the working tree into ``--dist-dir`` unless ``--wheel`` is given) installed
    in the agent venv;
  * upstream as deployed: the stock PyPI ``backend.ai-krunner-static-gnu`` 4.4.0; the agent
    mounts its volume and binds its own ``ai.backend.kernel`` (backend.ai-kernel 26.9.6)
    over it.

Our wheel is installed again at the end, also after a failure.

Upstream's python runtime answers queries through a Jupyter kernel: it takes the first
kernelspec whose name contains "python" from the runner's Jupyter path (``JUPYTER_PATH``,
``~/.local/share/jupyter``, ``/opt/backend.ai/share/jupyter``, ``/usr/local/share/jupyter``,
``/usr/share/jupyter``) and, as jupyter_client does, replaces an ``argv[0]`` of ``python``
with the runner's own interpreter, which has no ipykernel. ``images/python`` therefore installs
a kernelspec with an absolute argv in ``/usr/local/share/jupyter`` (as Backend.AI's own images
do); an image without one cannot be measured with upstream's runner.

The step semantics (what is timed, and how) are in the driver's docstring. Run on demand;
nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imagekit.localenv.agent_venv import (  # noqa: E402
    DRIVER,
    ensure_agent_venv,
    installed_krunner_version,
    use_krunner_package,
)

JSON = dict[str, Any]
LINES_CODE = "for i in range(100_000):\n    print(i)"
LINES_BYTES = sum(len(str(i)) + 1 for i in range(100_000))
BIG_CODE = "print('x' * 10_000_000)"
BIG_BYTES = 10_000_001
DRIVER_TIMEOUT = 900


def say(message: str) -> None:
    print(f"[agent-compare] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- preparation


def build_wheel(dist_dir: Path) -> Path:
    """Our krunner package from this checkout (``bai-imagekit krunner package``)."""
    dist_dir.mkdir(parents=True, exist_ok=True)
    say(f"building our krunner wheel into {dist_dir} …")
    started = time.time()
    subprocess.run([str(REPO / ".venv" / "bin" / "bai-imagekit"), "krunner", "package", "-o", str(dist_dir)],
                   check=True, cwd=REPO, timeout=1800)
    wheels = [w for w in dist_dir.glob("backend_ai_krunner_static_gnu-*.whl") if w.stat().st_mtime >= started - 1]
    if not wheels:
        wheels = sorted(dist_dir.glob("backend_ai_krunner_static_gnu-*.whl"), key=lambda w: w.stat().st_mtime)
    if not wheels:
        raise SystemExit(f"no wheel in {dist_dir} after 'bai-imagekit krunner package'")
    return max(wheels, key=lambda w: w.stat().st_mtime)


# --------------------------------------------------------------------------- the driver


@dataclass
class Runner:
    """One runner as the agent deploys it: the installed package and its volume."""

    label: str
    wheel: Path | None  # None: the stock PyPI package
    version: str = ""
    volumes: JSON | None = None


def driver(python: Path, *args: str) -> JSON:
    proc = subprocess.run([str(python), str(DRIVER), *args], capture_output=True, text=True,
                          timeout=DRIVER_TIMEOUT)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(f"driver {args[0]} printed no JSON (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}") from None


def install(python: Path, runner: Runner) -> None:
    runner.version = use_krunner_package(python, runner.wheel)
    runner.volumes = driver(python, "prepare")
    say(f"{runner.label}: backend.ai-krunner-static-gnu {runner.version}, volumes {runner.volumes}")


def run_kernel(python: Path, runner: Runner, image: str, steps: Sequence[JSON], uid: int, gid: int) -> JSON:
    """Start one kernel with the driver, run *steps*, fail loudly if anything failed or the
    kernel did not get this runner's volume (someone else may switch the package)."""
    if installed_krunner_version(python) != runner.version:
        raise SystemExit(f"the agent venv's krunner package changed under the benchmark "
                         f"(want {runner.version}, have {installed_krunner_version(python)})")
    out = driver(python, "run", "--image", image, "--krunner-volumes", json.dumps(runner.volumes),
                 "--kernel-uid", str(uid), "--kernel-gid", str(gid), "--steps", json.dumps(list(steps)))
    volume = ((out.get("kernel") or {}).get("krunner") or {}).get("volume")
    failed = [s for s in out.get("steps", []) if not s["ok"]]
    if out.get("error") or failed or not out.get("ok"):
        details = out.get("error") or "; ".join(f"{s['op']}: {s['error']}" for s in failed)
        hint = (f"\n(our runner did not come up from {runner.wheel.name}: a wheel built from a "
                f"half-edited checkout? --wheel takes a known-good one)" if runner.wheel else "")
        raise SystemExit(f"{runner.label}: kernel run failed: {details}\n"
                         f"{(out.get('container_logs') or '')[-3000:]}{hint}")
    if volume not in (runner.volumes or {}).values():
        raise SystemExit(f"{runner.label}: the kernel mounted {volume}, not {runner.volumes}")
    return out


def measure(python: Path, runner: Runner, image: str, args: argparse.Namespace) -> JSON:
    install(python, runner)
    uid, gid = args.kernel_uid, args.kernel_gid
    say(f"{runner.label}: benchmark kernel …")
    main_run = run_kernel(python, runner, image, [
        {"op": "query", "code": "x = 1"},  # both runners have their user process up
        {"op": "container_memory", "idle_seconds": args.idle},
        {"op": "bench_query", "code": "x = 1", "rounds": args.rounds, "warmup": args.warmup, "timeout": 600},
        {"op": "bench_output", "code": LINES_CODE, "repeat": args.repeat, "expect_bytes": LINES_BYTES,
         "timeout": 600},
        {"op": "bench_output", "code": BIG_CODE, "repeat": args.repeat, "expect_bytes": BIG_BYTES,
         "timeout": 600},
        {"op": "container_memory", "idle_seconds": args.idle},
    ], uid, gid)
    steps = main_run["steps"]
    cold: list[JSON] = []
    for index in range(args.cold_starts):
        say(f"{runner.label}: cold start {index + 1}/{args.cold_starts} …")
        out = run_kernel(python, runner, image, [{"op": "query", "code": "x = 1"}], uid, gid)
        cold.append({**out["startup"]["timings"], "first_query": out["steps"][0]["ended_at"]})
    return {
        "runner": runner.label,
        "package": runner.version,
        "volumes": runner.volumes,
        "memory_idle": steps[1],
        "query": steps[2],
        "lines": steps[3],
        "big": steps[4],
        "memory_after": steps[5],
        "cold_starts": cold,
    }


# --------------------------------------------------------------------------- report


def median_of(cold: Sequence[JSON], key: str) -> float:
    return statistics.median(c[key] for c in cold)


@dataclass
class Row:
    metric: str
    unit: str
    value: Callable[[JSON], float]
    note: Callable[[JSON], str] = lambda r: ""
    digits: int = 2


def rows(args: argparse.Namespace) -> list[Row]:
    n = args.cold_starts
    return [
        Row("trivial query p50", "ms", lambda r: r["query"]["p50_ms"]),
        Row("trivial query p99", "ms", lambda r: r["query"]["p99_ms"]),
        Row("100k-line print", "ms", lambda r: r["lines"]["median_ms"],
            lambda r: f"{min(r['lines']['stdout_bytes'])} B", 1),
        Row("10 MB print", "ms", lambda r: r["big"]["median_ms"],
            lambda r: f"{min(r['big']['stdout_bytes'])} B", 1),
        Row(f"cold start → first status (median of {n})", "s",
            lambda r: median_of(r["cold_starts"], "first_status")),
        Row(f"cold start → first query answered (median of {n})", "s",
            lambda r: median_of(r["cold_starts"], "first_query")),
        Row(f"container start → first status (median of {n})", "s",
            lambda r: median_of(r["cold_starts"], "container_start_to_first_status")),
        Row("container memory idle", "MiB", lambda r: r["memory_idle"]["usage_minus_inactive_file_mib"],
            digits=1),
        Row("container memory after the output runs", "MiB",
            lambda r: r["memory_after"]["usage_minus_inactive_file_mib"], digits=1),
    ]


def cell(row: Row, result: JSON) -> str:
    text = f"{row.value(result):.{row.digits}f} {row.unit}"
    note = row.note(result)
    return f"{text} ({note})" if note else text


def machine() -> str:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                            text=True, timeout=60).stdout.strip()
    return (f"{platform.node()}: {os.cpu_count()} vCPUs, {mem_gib:.0f} GiB, "
            f"{platform.system()} {platform.release()}, Docker {docker}")


def table(ours: JSON, upstream: JSON, args: argparse.Namespace) -> str:
    lines = ["| metric | ours | upstream as deployed | ratio (upstream/ours) |",
             "|---|---|---|---|"]
    for row in rows(args):
        a, b = row.value(ours), row.value(upstream)
        ratio = f"{b / a:.1f}×" if a else "—"
        lines.append(f"| {row.metric} | {cell(row, ours)} | {cell(row, upstream)} | {ratio} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="bai-ref/python:latest")
    parser.add_argument("--rounds", type=int, default=200, help="timed trivial queries")
    parser.add_argument("--warmup", type=int, default=20, help="untimed trivial queries first")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each output benchmark")
    parser.add_argument("--cold-starts", type=int, default=3, help="fresh kernels per runner")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before a memory sample")
    parser.add_argument("--kernel-uid", type=int, default=1000)
    parser.add_argument("--kernel-gid", type=int, default=1000)
    parser.add_argument("--wheel", type=Path, help="our krunner wheel (default: build one from this checkout)")
    parser.add_argument("--dist-dir", type=Path, default=Path("/tmp/dist"), help="where to build it")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    python = ensure_agent_venv()
    image = args.image
    wheel = args.wheel or build_wheel(args.dist_dir)
    ours_runner = Runner("ours", wheel)
    results: dict[str, JSON] = {}
    try:
        results["ours"] = measure(python, ours_runner, image, args)
        results["upstream"] = measure(python, Runner("upstream as deployed", None), image, args)
    finally:
        say("restoring our krunner package in the agent venv …")
        install(python, ours_runner)
    header = (f"agent_compare — {time.strftime('%Y-%m-%d %H:%M %Z')} — {machine()}\n"
              f"image {image} (from {args.image}), kernel uid/gid {args.kernel_uid}/{args.kernel_gid}; "
              f"ours {results['ours']['package']}, upstream {results['upstream']['package']} "
              f"+ backend.ai-kernel from the agent venv")
    if args.json:
        args.json.write_text(json.dumps({"header": header, "image": image, **results}, indent=2))
    print(header)
    print()
    print(table(results["ours"], results["upstream"], args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
