"""Benchmark krunner in a real kernel container and print a table.

    .venv/bin/python benchmarks/krunner_bench.py [--image bai-test/python:latest] [--rounds 200]

Measures, as the agent sees it (over the published 127.0.0.1 ports):
  * trivial query (`x = 1`) round trip, p50 and p99;
  * a 100,000-line print and a single 10 MB print, code sent → `finished` received, all output read;
  * cold start: `docker run` (container create+start) → first `status` answered, and → first query answered;
  * the same cold start with the self-contained krunner bundle (imagekit/bundle) mounted instead of the
    dev volume, in the python image and in a busybox-only image (no libc);
  * runner RSS when idle (the runner process only, not the user's REPL).
Run on demand; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imagekit.harness.client import AgentClient  # noqa: E402
from imagekit.harness.container import start_kernel_container  # noqa: E402
from imagekit.localenv.krunner_mounts import bundle_mount, dev_checkout_mount  # noqa: E402
from imagekit.localenv.prepare import prepare  # noqa: E402

TARGETS = {
    "trivial query p50": ("≤ 1 ms", "4.7 ms"),
    "100k-line print": ("≤ 40 ms", "163 ms"),
    "10 MB print": ("≤ 30 ms", "93 ms"),
    "cold start → first query": ("≤ 0.5 s", "1.0–1.3 s"),
    "bundle cold start → status": ("≤ 0.5 s", "1.0–1.3 s"),
    "bundle busybox → status": ("≤ 0.5 s", ""),
    "runner RSS idle": ("≤ 20 MB", "51 MB"),
}


def timed_query(client: AgentClient, code: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    result = client.query(code, timeout=120)
    elapsed = time.perf_counter() - t0
    assert result.exit_code == 0, result.stderr
    return elapsed, len(result.stdout_bytes)


def median_of(client: AgentClient, code: str, repeat: int) -> tuple[float, int]:
    runs = [timed_query(client, code) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), runs[0][1]


def runner_rss_kib(kernel) -> int:
    # the runner is the process named bai-krunner (krunner.proctitle); sum nothing else
    script = (
        "for p in /proc/[0-9]*; do "
        "if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^bai-krunner'; then "
        "grep VmRSS $p/status; fi; done"
    )
    _, out = kernel.exec_run(["sh", "-c", script])
    values = [int(line.split()[1]) for line in out.splitlines() if line.startswith("VmRSS")]
    return max(values) if values else -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="bai-test/python:latest")
    parser.add_argument("--rounds", type=int, default=200, help="trivial queries to time")
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--no-bundle", dest="bundle", action="store_false",
                        help="skip the cold starts with the self-contained krunner bundle")
    args = parser.parse_args()
    prepare(images=["python"])
    mount = dev_checkout_mount()
    rows: list[tuple[str, str]] = []

    cold_status, cold_query = [], []
    for _ in range(args.cold_starts):
        t0 = time.perf_counter()
        with start_kernel_container(args.image, "python", "/usr/bin/python3", krunner=mount) as kernel:
            with AgentClient(kernel.repl_in_port, kernel.repl_out_port) as client:
                client.wait_ready(timeout=60)
                cold_status.append(time.perf_counter() - t0)
                assert client.query("x = 1").exit_code == 0
                cold_query.append(time.perf_counter() - t0)

    with start_kernel_container(args.image, "python", "/usr/bin/python3", krunner=mount) as kernel:
        with AgentClient(kernel.repl_in_port, kernel.repl_out_port) as client:
            client.wait_ready(timeout=60)
            for _ in range(20):  # warm up
                timed_query(client, "x = 1")
            time.sleep(1.0)
            rss = runner_rss_kib(kernel)
            samples = sorted(timed_query(client, "x = 1")[0] for _ in range(args.rounds))
            p50 = samples[len(samples) // 2]
            p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
            lines_t, lines_bytes = median_of(client, "for i in range(100_000):\n    print(i)", 5)
            big_t, big_bytes = median_of(client, "print('x' * 10_000_000)", 5)
            time.sleep(1.0)
            rss_after = runner_rss_kib(kernel)

    bundle_rows = []
    if args.bundle:
        from imagekit.localenv.test_images import ensure_test_images

        ensure_test_images(["busybox"])
        bundle = bundle_mount()
        for label, image, rtype, rpath in (
            ("bundle cold start → status", args.image, "python", "/usr/bin/python3"),
            ("bundle busybox → status", "bai-test/busybox:latest", "shell", None),
        ):
            times = []
            for _ in range(args.cold_starts):
                t0 = time.perf_counter()
                with start_kernel_container(image, rtype, rpath, krunner=bundle) as kernel:
                    with AgentClient(kernel.repl_in_port, kernel.repl_out_port) as client:
                        client.wait_ready(timeout=60)
                        times.append(time.perf_counter() - t0)
            bundle_rows.append((label, f"{statistics.median(times):.2f} s (median of {args.cold_starts})"))

    rows += [
        ("trivial query p50", f"{p50 * 1000:.2f} ms (p99 {p99 * 1000:.2f} ms, n={args.rounds})"),
        ("100k-line print", f"{lines_t * 1000:.1f} ms ({lines_bytes} bytes, median of 5)"),
        ("10 MB print", f"{big_t * 1000:.1f} ms ({big_bytes} bytes, median of 5)"),
        ("cold start → status", f"{statistics.median(cold_status):.2f} s (median of {args.cold_starts})"),
        ("cold start → first query", f"{statistics.median(cold_query):.2f} s (median of {args.cold_starts})"),
        ("runner RSS idle", f"{rss / 1024:.1f} MB ({rss_after / 1024:.1f} MB after the 10 MB runs)"),
        *bundle_rows,
    ]
    print(f"krunner benchmark — {time.strftime('%Y-%m-%d')} — {platform.node()} "
          f"({platform.machine()}, {platform.system()} {platform.release()}), image {args.image}")
    print()
    print(f"| {'metric':<26} | {'measured':<44} | {'target':<9} | {'upstream':<9} |")
    print(f"|{'-' * 28}|{'-' * 46}|{'-' * 11}|{'-' * 11}|")
    for name, value in rows:
        target, upstream = TARGETS.get(name, ("", ""))
        print(f"| {name:<26} | {value:<44} | {target:<9} | {upstream:<9} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
