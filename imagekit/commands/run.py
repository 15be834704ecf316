"""``bai-imagekit run IMAGE``: start a kernel container like an agent and print how to reach it."""

from __future__ import annotations

import argparse
import json
import sys

from ..console import progress
from ..errors import EnvironmentProblem, UsageError
from ._kernels import docker_client, krunner_mount

EPILOG = """\
examples:
  bai-imagekit run my/kernel:latest                 # start, print ports and service URLs, leave running
  bai-imagekit run my/kernel:latest --attach        # an interactive console on the query mode
  bai-imagekit app bai-imagekit-run.kernel.1a2b3c4d jupyterlab
  bai-imagekit stop bai-imagekit-run.kernel.1a2b3c4d"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="start a kernel container the way an agent does and print how to reach it",
        description="Create a container from IMAGE exactly like a Backend.AI agent (krunner mounted, the "
        "entrypoint replacing the image's, uid-match, BACKENDAI_* variables, /home/config, resource limits "
        "from the labels, every port published on 127.0.0.1 only), wait for the runner, then print the "
        "container, its query/PTY ports and each service's URL.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--attach", action="store_true", help="open an interactive console on the query mode; "
                   "the container is removed when it ends (unless --keep)")
    p.add_argument("--keep", action="store_true", help="with --attach: leave the container running afterwards")
    p.add_argument("--uid", type=int, default=None, help="LOCAL_USER_ID (default: the calling user, root → 1000)")
    p.add_argument("--gid", type=int, default=None, help="LOCAL_GROUP_ID (default: the calling group)")
    p.add_argument("--cpus", type=float, help="CPU limit (default: ai.backend.resource.min.cpu, at least 1)")
    p.add_argument("--memory", help="memory limit, e.g. 2g (default: ai.backend.resource.min.mem, at least 1g)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--ready-timeout", type=float, default=60.0, metavar="SECONDS")
    p.set_defaults(handler=run)


def _ids(args: argparse.Namespace) -> tuple[int, int]:
    import os

    uid = args.uid if args.uid is not None else (os.getuid() or 1000)
    gid = args.gid if args.gid is not None else (os.getgid() or 1000)
    return uid, gid


def describe(session) -> dict:
    """The connection facts of a running kernel (what ``run`` prints)."""
    from ..smoke.checks.services import render_url

    kc = session.kernel
    apps = {}
    try:
        apps = {a.name: a for a in session.agent(timeout=10).get_apps(timeout=10).data}
    except TimeoutError:
        pass
    services = {}
    for entry in session.facts.services:
        app = apps.get(entry.name)
        url = render_url(app.url_template if app else "", entry.protocol, kc.host_port(entry.ports[0]))
        services[entry.name] = {"protocol": entry.protocol, "container_port": entry.ports[0], "url": url}
    return {
        "container": kc.container.name,
        "container_id": kc.container.id,
        "image": session.facts.image,
        "kernel_id": kc.kernel_id,
        "work_dir": str(kc.work_dir),
        "query_ports": {"in": kc.repl_in_port, "out": kc.repl_out_port},
        "pty_ports": {"in": kc.pty_in_port, "out": kc.pty_out_port},
        "services": services,
    }


def print_facts(facts: dict, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(facts, indent=2))
        return
    print(f"container  {facts['container']} ({facts['container_id'][:12]})")
    print(f"query      tcp://127.0.0.1:{facts['query_ports']['in']} (in), tcp://127.0.0.1:{facts['query_ports']['out']} (out)")
    print(f"pty        tcp://127.0.0.1:{facts['pty_ports']['in']} (in), tcp://127.0.0.1:{facts['pty_ports']['out']} (out)")
    print(f"work dir   {facts['work_dir']}")
    for name, svc in facts["services"].items():
        print(f"service    {name:<14} {svc['url']}  (start it: bai-imagekit app {facts['container']} {name})")


def run(args: argparse.Namespace) -> int:
    from docker.errors import ImageNotFound

    from ..harness.agent_env import resources_from_labels
    from ..harness.container import KernelContainerError
    from ..smoke.session import ImageFacts, SmokeSession

    client = docker_client()
    try:
        labels = dict(client.images.get(args.image).labels or {})
    except ImageNotFound:
        raise EnvironmentProblem(f"image {args.image!r} not found on the Docker engine") from None
    try:
        resources = resources_from_labels(labels, cpus=args.cpus, mem=args.memory)
    except ValueError as exc:
        raise UsageError(f"--memory {args.memory!r}: {exc}") from exc
    uid, gid = _ids(args)
    progress(f"starting {args.image} …")
    try:
        session = SmokeSession.start(
            ImageFacts(args.image, labels), krunner_mount(client), client, uid=uid, gid=gid,
            resources=resources, name_prefix="bai-imagekit-run",
        )
    except KernelContainerError as exc:
        raise EnvironmentProblem(str(exc)) from exc
    try:
        session.agent(timeout=args.ready_timeout).wait_ready(timeout=args.ready_timeout)
    except TimeoutError:
        logs = session.kernel.logs()[-3000:]
        session.close()
        print(logs, file=sys.stderr)
        print(f"bai-imagekit: the runner did not answer within {args.ready_timeout:g} s", file=sys.stderr)
        return 1
    print_facts(describe(session), args.format)
    if not args.attach:
        return 0
    from ._console import interactive_console

    try:
        interactive_console(session.agent(timeout=3600))
    finally:
        if not args.keep:
            session.close()
            progress(f"removed {session.kernel.container.name}")
    return 0
