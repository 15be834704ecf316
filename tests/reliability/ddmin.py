"""Delta debugging (Zeller's ddmin) of a fuzzed message sequence down to a minimal failing one.

    .venv/bin/python -m tests.reliability.ddmin --seed 1 --count 10000 [--runner ours] [--out case.json]

Generates the fuzz sequence of *seed*, checks that it fails against a fresh kernel, then removes
chunks of messages while the failure stays (each test runs in a new kernel, so state from one
attempt never leaks into the next). The minimal sequence is written as JSON (frames as
base64) – the shape :func:`load_case` reads and ``test_fuzz.py`` replays.

"Fails" is the fuzz oracle's verdict (:meth:`FuzzResult.ok` is False); ``--predicate`` narrows
it to one symptom: ``unanswered`` (the marker query is never answered), ``missing`` (an owed
reply is missing), ``exited`` (the runner died).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool], *, log: Callable[[str], None] = print,
          max_tests: int = 400) -> list[T]:
    """The 1-minimal subsequence of *items* for which *fails* still holds (*items* must fail)."""
    current = list(items)
    n = 2
    tests = 0
    while len(current) >= 2 and tests < max_tests:
        size = len(current) // n
        chunks = [current[i * size:(i + 1) * size] if i < n - 1 else current[i * size:] for i in range(n)]
        reduced = False
        for i, chunk in enumerate(chunks):  # a chunk alone fails?
            tests += 1
            if fails(chunk):
                current, n, reduced = chunk, 2, True
                log(f"ddmin: chunk {i + 1}/{len(chunks)} fails alone → {len(current)} messages")
                break
        if not reduced and n > 2:
            for i in range(n):  # its complement fails?
                complement = [m for j, c in enumerate(chunks) if j != i for m in c]
                tests += 1
                if fails(complement):
                    current, n, reduced = complement, max(n - 1, 2), True
                    log(f"ddmin: complement of chunk {i + 1}/{len(chunks)} fails → {len(current)} messages")
                    break
        if not reduced:
            if n >= len(current):
                break
            n = min(len(current), 2 * n)
            log(f"ddmin: granularity {n} ({len(current)} messages)")
    log(f"ddmin: {len(current)} messages after {tests} tests")
    return current


# --------------------------------------------------------------------------- cases on disk


def dump_case(messages: list[list[bytes]], path: Path, **meta: object) -> None:
    body = {"meta": meta, "messages": [[base64.b64encode(f).decode() for f in m] for m in messages]}
    path.write_text(json.dumps(body, indent=1) + "\n")


def load_case(path: Path) -> list[list[bytes]]:
    return [[base64.b64decode(f) for f in m] for m in json.loads(path.read_text())["messages"]]


# --------------------------------------------------------------------------- command line


def _predicate(name: str):
    def check(result) -> bool:
        if name == "unanswered":
            return result.alive and not result.marker_answered
        if name == "missing":
            return bool(result.missing or result.serial_missing)
        if name == "exited":
            return not result.alive
        return not result.ok

    return check


def main(argv: list[str] | None = None) -> int:
    from . import fuzz
    from .kernel import (
        REFERENCE_IMAGE,
        REFERENCE_RUNTIME,
        TEST_IMAGE,
        TEST_RUNTIME,
        ProbeKernel,
        Runner,
    )

    p = argparse.ArgumentParser(prog="python -m tests.reliability.ddmin", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--runner", choices=[r.value for r in Runner], default="ours")
    p.add_argument("--predicate", choices=["any", "unanswered", "missing", "exited"], default="any")
    p.add_argument("--recover-timeout", type=float, default=15.0,
                   help="seconds the marker query gets after the interrupt before the sequence counts as failing")
    p.add_argument("--max-tests", type=int, default=300)
    p.add_argument("--pace", type=int, default=0,
                   help="unanswered serial ops allowed before the next message (0: flat out, as an agent flood)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--krunner-dir", type=Path, default=None,
                   help="run this krunner package tree instead of the checkout's (e.g. `git archive <commit> krunner`)")
    args = p.parse_args(argv)

    runner = Runner(args.runner)
    image, runtime = (TEST_IMAGE, TEST_RUNTIME) if runner is Runner.OURS else (REFERENCE_IMAGE, REFERENCE_RUNTIME)
    check = _predicate(args.predicate)
    started = time.monotonic()

    def fails(messages: list[list[bytes]]) -> bool:
        with ProbeKernel.start(runner, image, runtime, krunner_dir=args.krunner_dir) as kernel:
            kernel.close_client()
            result = fuzz.run_messages(kernel.kc.repl_in_port, kernel.kc.repl_out_port, messages,
                                       alive=kernel.alive, recover_timeout=args.recover_timeout, pace=args.pace)
        verdict = check(result)
        print(f"  [{time.monotonic() - started:6.0f} s] {len(messages):6d} messages: "
              f"{'FAILS' if verdict else 'passes'} ({result.summary()})", file=sys.stderr, flush=True)
        return verdict

    messages = fuzz.generate(args.seed, fuzz.FuzzConfig(count=args.count))
    if not fails(messages):
        print(f"seed {args.seed} ({args.count} messages) does not fail ({args.predicate})", file=sys.stderr)
        return 1
    minimal = ddmin(messages, fails, max_tests=args.max_tests, log=lambda s: print(s, file=sys.stderr, flush=True))
    out = args.out or Path(f"ddmin-seed{args.seed}.json")
    dump_case(minimal, out, seed=args.seed, count=args.count, predicate=args.predicate, runner=args.runner)
    for m in minimal:
        print(repr([f[:200] for f in m]))
    print(f"minimal case: {len(minimal)} messages → {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
