"""Run one snippet in a real kernel container, the way an agent does, and print what came back."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .client import AgentClient
from .container import start_kernel_container
from .krunner_mount import KrunnerMount

DEFAULT_SNIPPET = """\
import platform, sys
print(f"Hello from {platform.python_implementation()} {platform.python_version()} in a kernel container")
squares = {n: n * n for n in range(1, 6)}
squares
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagekit.harness.demo", description=__doc__)
    parser.add_argument("--image", default="bai-test/python:latest")
    parser.add_argument("--runtime-type", default="python")
    parser.add_argument("--runtime-path", default="/usr/bin/python3")
    parser.add_argument("--code", default=DEFAULT_SNIPPET, help="the snippet to run (query mode)")
    args = parser.parse_args(argv)

    repo = Path(__file__).resolve().parents[2]
    t0 = time.monotonic()
    print(f"starting a kernel container from {args.image} ...", file=sys.stderr)
    with start_kernel_container(
        args.image, args.runtime_type, args.runtime_path, krunner=KrunnerMount.dev_checkout(repo)
    ) as kernel:
        with AgentClient(kernel.repl_in_port, kernel.repl_out_port) as client:
            client.wait_ready(timeout=60)
            ready = time.monotonic() - t0
            print(f"runner ready after {ready:.2f} s (REPL on 127.0.0.1:{kernel.repl_in_port}/{kernel.repl_out_port})",
                  file=sys.stderr)
            print("--- code ---------------------------------------------")
            print(args.code.rstrip())
            result = client.query(args.code)
            print("--- records ------------------------------------------")
            for kind, payload in result.records:
                print(f"{kind:8} {payload.decode('utf-8', errors='replace')!r}")
            print(f"{result.status:8} {result.payload.decode()}")
            print("--- stdout -------------------------------------------")
            sys.stdout.write(result.stdout)
    return 0 if result.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
