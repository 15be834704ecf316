"""``bai-imagekit app CONTAINER SERVICE``: start a service in a running kernel and print its URL."""

from __future__ import annotations

import argparse
import json

from ..errors import UsageError
from ._kernels import docker_client, find_kernel


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="start a service port in a container from `run` and print its URL",
        description="Send start-service for SERVICE (as the agent does when a user opens an app) and print "
        "the URL rendered from its url_template. Exit 1 if the runner reports `failed`.",
    )
    p.add_argument("container", metavar="CONTAINER", help="name or id printed by `bai-imagekit run`")
    p.add_argument("service", metavar="SERVICE", help="a name from the ai.backend.service-ports label")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..harness.client import AgentClient
    from ..smoke.checks.services import render_url
    from ..smoke.session import ImageFacts

    client = docker_client()
    kernel = find_kernel(client, args.container)
    facts = ImageFacts(kernel.container.image.tags[0] if kernel.container.image.tags else kernel.container.image.id,
                       dict(kernel.container.image.labels or {}))
    entry = next((e for e in facts.services if e.name == args.service), None)
    if entry is None:
        known = ", ".join(e.name for e in facts.services) or "none"
        raise UsageError(f"the image declares no service {args.service!r} (declared: {known})")
    with AgentClient(kernel.repl_in_port, kernel.repl_out_port, timeout=180) as agent:
        apps = {a.name: a for a in agent.get_apps().data}
        request = {"name": entry.name, "port": entry.ports[0], "ports": list(entry.ports), "protocol": entry.protocol,
                   "options": {}}
        result = agent.start_service(request)
    app = apps.get(entry.name)
    url = render_url(app.url_template if app else "", entry.protocol, kernel.host_port(entry.ports[0]))
    if args.format == "json":
        print(json.dumps({"service": entry.name, "status": result.status, "error": result.error, "url": url}))
    elif result.status == "failed":
        print(f"{entry.name}: failed: {result.error}")
    else:
        print(f"{entry.name}: {result.status}  {url}")
    return 1 if result.status == "failed" else 0
