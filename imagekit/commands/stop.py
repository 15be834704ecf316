"""``bai-imagekit stop CONTAINER…``: remove containers started by ``run`` and their scratch dirs."""

from __future__ import annotations

import argparse

from ..console import progress
from ._kernels import docker_client, find_kernel


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stop", help="remove a container started by `run`, with its scratch /home/work",
                       description="Stop (SIGINT, then SIGKILL after 5 s) and remove each container and its "
                       "scratch directory.")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    client = docker_client()
    kernels = [find_kernel(client, ref) for ref in args.containers]  # all found before any is removed
    for kernel in kernels:
        kernel.stop()
        progress(f"removed {kernel.container.name} and {kernel.scratch_dir}")
    return 0
