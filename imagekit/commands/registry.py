"""``bai-imagekit registry scan REGISTRY[/NAMESPACE]``: audit a registry the way the manager's rescan reads it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..findings import Finding, Severity, exceeds
from .validate import add_registry_options, registry_options

EXIT_OK, EXIT_FINDINGS = 0, 1
SCAN_FORMATS = ("table", "json", "junit")

EXAMPLES = """\
Lists the repositories (GET /v2/_catalog) and their tags (GET /v2/<repo>/tags/list), following
pagination, reads every tag's manifest or index and each platform's config blob – never a layer –
and prints what the Backend.AI manager's rescan would conclude for each: registered as a kernel
image, as a plain image, skipped and why, or failing; with the platforms, accelerators and size.
Every platform's labels get the label rules; findings are printed under the image's reference.

With NAMESPACE, only repositories whose name starts with it are listed (as the manager does with
the registry's project) and the rest of the rescan treats NAMESPACE as that project.

examples:
  bai-imagekit registry scan cr.example.com/my-project
  bai-imagekit registry scan 127.0.0.1:5000/bai-ref --insecure --format junit -o scan.xml
  bai-imagekit registry scan cr.example.com/my-project --max-size 4GiB --format json

Credentials come from the Docker config (~/.docker/config.json or $DOCKER_CONFIG; auths,
credHelpers, credsStore), as `docker login` leaves them.

Every platform the rescan skips or fails on has a finding (a label rule, or BAI317-BAI319), so
--fail-on decides the exit code alone.

exit codes: 0 no finding at or above --fail-on, 1 such findings,
2 usage or environment error (registry unreachable, access denied, no v2 API, no catalog).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "registry",
        help="audit the kernel images of a registry (what the manager's rescan will conclude)",
        description="Work with images where they live, in a registry.",
    )
    sub = p.add_subparsers(dest="registry_command", metavar="SUBCOMMAND", parser_class=type(p))
    scan = sub.add_parser(
        "scan",
        help="list a registry's images and print the rescan verdict and findings of each",
        description="Audit every tag of a registry (or of one namespace/project in it) without pulling.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument("registry", metavar="REGISTRY[/NAMESPACE]", help="e.g. cr.example.com/my-project or 127.0.0.1:5000")
    scan.add_argument("--format", choices=SCAN_FORMATS, default="table", help="output format (default: table)")
    scan.add_argument("--fail-on", choices=[s.value for s in Severity], default="error",
                      help="lowest severity that makes the exit code 1 (default: error)")
    scan.add_argument("-o", "--output", metavar="FILE", default=None, help="write the report to FILE")
    add_registry_options(scan)
    scan.set_defaults(handler=run_scan)
    p.set_defaults(handler=lambda args: _no_subcommand(p))


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_scan(args: argparse.Namespace) -> int:
    from ..console import progress, task
    from ..registry.client import (
        DeniedError,
        NotFoundError,
        RegistryClient,
        RegistryError,
    )
    from ..registry.reference import ImageReference, parse_registry_target
    from ..registry.render import render_scan_json, render_scan_junit, render_scan_table
    from ..registry.rescan import ImageView
    from ..registry.target import targets_for_view
    from ..registry.view import read_image

    host, namespace = parse_registry_target(args.registry)
    options = registry_options(args).model_copy(update={"labels_only": True, "project": namespace or None})
    rows: list[tuple[ImageView, list[Finding]]] = []
    with RegistryClient(ImageReference(registry=host, repository="x").api_host, insecure=options.insecure,
                        timeout=options.timeout) as client:
        try:
            repositories = sorted(r for r in client.catalog() if not namespace or r.startswith(namespace))
        except (NotFoundError, DeniedError) as exc:
            raise RegistryError(f"{exc} – the registry does not let this account list its repositories "
                                "(GET /v2/_catalog); use an account with catalog access, or check single "
                                "images with `bai-imagekit validate REGISTRY/REPO:TAG`") from exc
        progress(f"{args.registry}: {len(repositories)} repositor{'y' if len(repositories) == 1 else 'ies'}")
        with task("registry scan") as scan:  # on a TTY: a step line per repository, a live line per tag
            for number, repository in enumerate(repositories, 1):
                tags = sorted(client.tags(repository))
                scan.step(f"[{number}/{len(repositories)}] {repository}: {len(tags)} tag{'s' * (len(tags) != 1)}")
                for tag in tags:
                    ref = ImageReference(registry=host, repository=repository, tag=tag)
                    scan.update(f"{repository}:{tag}")
                    try:
                        view = read_image(client, ref, options.project)
                    except NotFoundError:  # listed but gone (the manager ignores it too)
                        view = ImageView(reference=str(ref), registry=host, repository=repository, tag=tag, missing=True,
                                         error="listed, but the registry has no manifest for it (missing or deleted; "
                                         "the manager ignores it)")
                        rows.append((view, []))
                        continue
                    findings: list[Finding] = []
                    for target in targets_for_view(view, str(ref), options):
                        findings += target.findings()
                    rows.append((view, findings))
    fail_on = Severity(args.fail_on)
    if args.format == "json":
        text = render_scan_json(args.registry, rows)
    elif args.format == "junit":
        text = render_scan_junit(args.registry, rows, fail_on)
    else:
        text = render_scan_table(rows, sys.stdout if not args.output else _Plain())
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc}") from exc
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return EXIT_FINDINGS if exceeds([f for _, fs in rows for f in fs], fail_on) else EXIT_OK


class _Plain:
    def isatty(self) -> bool:
        return False
