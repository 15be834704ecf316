"""``bai-imagekit build [DIR|Dockerfile] -t TAG [--push]``: build, add the kernel layer, validate, tag,
and with ``--push`` push every tag through the engine and validate the pushed image from the registry."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ..config import add_config_options
from ..console import Task, paint, progress, task
from ..errors import EnvironmentProblem, UsageError
from ..findings import Finding, Severity
from ..image_build import (
    BuildOptions,
    BuildResult,
    connect,
    make_plan,
    prebuild_findings,
    resolve_ca_bundle,
    rewrite_for_ca,
    run_build,
)
from ..image_push import PushedTag, PushError, push_tag, split_tag
from ..runner_target import RUNNER_CHOICES, RUNNER_HELP, RunnerTarget

EXIT_OK, EXIT_FINDINGS = 0, 1


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _services(values: list[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for item in values:
        name, sep, port = item.partition("=")
        if sep and not port.isdigit():
            raise UsageError(f"--service {item!r}: expected NAME or NAME=PORT")
        out[name] = int(port) if sep else None
    return out


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    labels = _pairs(args.label, "--label")
    for flag, key in (("runtime_type", "runtime-type"), ("runtime_path", "runtime-path"), ("base_distro", "base-distro")):
        if getattr(args, flag):
            labels[f"ai.backend.{key}"] = getattr(args, flag)
    return BuildOptions(
        path=Path(args.path),
        dockerfile=Path(args.file) if args.file else None,
        spec=Path(args.spec) if args.spec else None,
        tags=list(args.tag),
        build_args=_pairs(args.build_arg, "--build-arg"),
        labels=labels,
        services=_services(args.service),
        policy=Path(args.policy) if args.policy else None,
        no_policy=args.no_policy,
        platform=args.platform,
        target=args.target,
        no_cache=args.no_cache,
        pull=args.pull,
        ca_bundle=resolve_ca_bundle(args.ca_bundle),
        allow_errors=args.allow_errors,
        runner=RunnerTarget(args.runner) if args.runner else None,
    )


def _print_findings(findings: list[Finding], fmt: str, target: str, stream=None) -> None:
    from ..report import Report, render

    stream = stream or sys.stdout
    stream.write(render(Report.single(target, findings), fmt, stream))
    stream.flush()


def _dry_run(options: BuildOptions, fmt: str) -> int:
    plan = make_plan(options)
    findings = prebuild_findings(plan)
    rewritten = rewrite_for_ca(plan.dockerfile.read_text(encoding="utf-8")) if options.ca_bundle else None
    if fmt == "json":
        print(json.dumps({
            "dry_run": True,
            "plan": plan.describe(),
            "labels": plan.labels,
            "service_defs": {n: str(p) for n, p in plan.service_defs.items()},
            "policy": plan.policy_source,
            "kernel_layer": plan.kernel_layer,
            "author_dockerfile": rewritten,
            "findings": [f.model_dump(mode="json") for f in findings],
        }, indent=2))
    else:
        print("# bai-imagekit build --dry-run")
        for line in plan.describe():
            print(f"#   {line}")
        if rewritten is not None:
            print(f"#\n# --- {plan.dockerfile}, as built with the CA secret ---")
            print(rewritten, end="")
            print("# --- kernel layer ---")
        print(plan.kernel_layer, end="")
        sys.stdout.flush()
        _print_findings(findings, "text", str(options.path), sys.stderr)
    errors = any(f.severity is Severity.ERROR for f in findings)
    return EXIT_FINDINGS if errors and not options.allow_errors else EXIT_OK


def _report(result: BuildResult, fmt: str, target: str) -> None:
    if fmt == "json":
        print(json.dumps(result.to_json(), indent=2))
        return
    _print_findings(result.findings, fmt, target)
    if fmt != "text":
        return
    if result.ok:
        tags = ", ".join(result.tags) or "no tag"
        print(paint(f"built {result.image_id} ({tags})", "green"))
    elif result.error:
        print(paint(f"bai-imagekit build: {result.error}", "red", sys.stderr), file=sys.stderr)


def validate_pushed(pushed: list[PushedTag], *, insecure: bool = False) -> tuple[list[tuple[str, list[Finding]]], list]:
    """Validate what the registry now serves, read back over its API without the engine: the
    findings per platform, and the rescan views (:class:`imagekit.registry.rescan.ImageView`,
    what the Backend.AI manager concludes for each platform) – what the manager will read is what
    gets checked. An image pushed under several tags of one repository is read once.
    *insecure*: plain HTTP."""
    from ..registry.rescan import ImageView
    from ..registry.target import RegistryOptions
    from ..targets import open_targets

    options = RegistryOptions(insecure=insecure)
    seen: set[tuple[str, str]] = set()
    sections: list[tuple[str, list[Finding]]] = []
    views: list[ImageView] = []
    for item in pushed:
        if (item.repository, item.digest) in seen:
            continue
        seen.add((item.repository, item.digest))
        with open_targets([item.reference], "registry", registry=options) as loaded:
            for target in loaded:
                sections.append((target.name, target.findings()))
                image = getattr(target, "image", None)
                if isinstance(image, ImageView) and all(image is not v for v in views):
                    views.append(image)
    return sections, views


def _check_push_args(args: argparse.Namespace) -> None:
    if not args.push:
        return
    if not args.tag:
        raise UsageError("--push needs at least one -t REGISTRY/REPOSITORY:TAG to push")
    for tag in args.tag:
        split_tag(tag)


def _push(result: BuildResult, client, args: argparse.Namespace, target: str) -> int:
    """Push every tag, validate from the registry, report; the exit code of the whole build.

    Text: the build's report was printed already; the pushed tags and the registry's report follow.
    JSON: one document, the build's result with ``pushed`` and ``registry_findings`` (or
    ``push_error`` / ``registry_error``). SARIF/GitHub: one report, the build's and the registry's
    findings together."""
    from ..registry.render import render_view_text, view_json
    from ..report import Report, render

    built = result.to_json()
    pushed: list[PushedTag] = []

    def fail(key: str, exc: Exception) -> None:
        if args.format == "json":
            print(json.dumps({**built, "pushed": [p.model_dump() for p in pushed], key: str(exc)}, indent=2))

    try:
        for tag in result.tags:
            with task(f"push {tag}") as pushing:
                pushed.append(push_tag(client, tag, log=pushing.step, update=pushing.update, tty=pushing.live))
            if args.format == "text":
                print(paint(f"pushed {tag} ({pushed[-1].digest})", "green"), flush=True)
    except PushError as exc:
        fail("push_error", exc)
        raise
    try:
        with task(f"validate {pushed[0].reference} from the registry") as reading:
            sections, views = validate_pushed(pushed, insecure=args.insecure)
            reading.outcome = "read"
    except (EnvironmentProblem, UsageError) as exc:
        fail("registry_error", exc)
        raise
    if args.format == "json":
        print(json.dumps({
            **built,
            "pushed": [p.model_dump() for p in pushed],
            "registry_findings": {name: [f.model_dump(mode="json") for f in found] for name, found in sections},
            "rescan": [view_json(v) for v in views],
        }, indent=2))
    else:
        report = Report([]) if args.format == "text" else Report.single(target, result.findings)
        for name, found in sections:
            report.add(name, found)
        if args.format == "text":
            print("validated from the registry:")
            sys.stdout.write("".join(render_view_text(v, sys.stdout) for v in views))
        sys.stdout.write(render(report, args.format, sys.stdout))
        sys.stdout.flush()
    errors = any(f.severity is Severity.ERROR for _, found in sections for f in found)
    return EXIT_FINDINGS if errors and not args.allow_errors else EXIT_OK


#: a step of the classic builder ("Step 3/7 : RUN …") or of BuildKit ("#5 [2/3] RUN …"), and imagekit's own stages
_STEP = re.compile(r"^(?:Step \d+/\d+ :|#\d+ \[[^\]]*\d+/\d+\]|building |author image |validating )")


def build_log(building: Task):
    """The build's log lines → kept step lines and a live line for everything in between (see console)."""

    def log(line: str) -> None:
        (building.step if _STEP.match(line) else building.update)(line)

    return log


def _run_multi(args: argparse.Namespace, platforms: list[str]) -> int:
    """``--platform linux/amd64,linux/arm64``: a build per platform (tags ``<tag>-<arch>``), their
    ``ai.backend.*`` labels compared (BAI316), and with ``--push`` a manifest list per tag, validated
    from the registry platform by platform (see :mod:`imagekit.image_multi`)."""
    from ..findings import Location
    from ..image_multi import (
        label_mismatches,
        options_per_platform,
        platform_tag,
        put_manifest_list,
    )
    from ..registry.render import render_view_text
    from ..report import Report, render

    if args.format != "text":
        raise UsageError("a multi-platform build (--platform A,B) reports as text only; build one platform at a "
                         "time for --format json/sarif/github")
    options = options_from_args(args)
    _check_push_args(args)
    per_platform = options_per_platform(options, platforms)
    if args.dry_run:
        return max(_dry_run(o, "text") for o in per_platform)
    client = connect()
    results: dict[str, BuildResult] = {}
    for opts in per_platform:
        plan = make_plan(opts)
        for line in plan.describe():
            progress(f"{opts.platform}: {line}")
        with task(f"build {opts.platform}") as building:
            result = run_build(plan, client, log=build_log(building))
            building.outcome = "done" if result.ok else f"stopped at {result.stage}"
        _report(result, "text", f"{options.path} ({opts.platform})")
        if not result.ok:
            progress(f"not built for every platform: {opts.platform} failed")
            return EXIT_FINDINGS
        results[opts.platform] = result
    labels = {p: dict(client.images.get(r.image_id).labels or {}) for p, r in results.items()}
    mismatches = label_mismatches(labels, Location(file=str(options.path)))
    _print_findings(mismatches, "text", f"{options.path} (platforms)")
    if not mismatches:
        print(paint(f"platforms {', '.join(platforms)}: identical ai.backend.* labels", "green"))
    if not args.push:
        return EXIT_FINDINGS if mismatches and not args.allow_errors else EXIT_OK
    indexes: list[PushedTag] = []
    for tag in options.tags:
        pushed: dict[str, PushedTag] = {}
        for platform in platforms:
            local = platform_tag(tag, platform)
            with task(f"push {local}") as pushing:
                pushed[platform] = push_tag(client, local, log=pushing.step, update=pushing.update, tty=pushing.live)
            print(paint(f"pushed {local} ({pushed[platform].digest})", "green"), flush=True)
        with task(f"manifest list {tag}"):
            indexes.append(put_manifest_list(tag, pushed, insecure=args.insecure))
        print(paint(f"pushed {tag} ({indexes[-1].digest}): manifest list of {', '.join(platforms)}", "green"), flush=True)
    with task(f"validate {indexes[0].reference} from the registry") as reading:
        sections, views = validate_pushed(indexes, insecure=args.insecure)
        reading.outcome = "read"
    report = Report([])
    for name, found in sections:
        report.add(name, found)
    print("validated from the registry:")
    sys.stdout.write("".join(render_view_text(v, sys.stdout) for v in views))
    sys.stdout.write(render(report, "text", sys.stdout))
    sys.stdout.flush()
    errors = any(f.severity is Severity.ERROR for _, found in sections for f in found)
    return EXIT_FINDINGS if (errors or mismatches) and not args.allow_errors else EXIT_OK


def run(args: argparse.Namespace) -> int:
    from ..image_multi import parse_platforms

    platforms = parse_platforms(args.platform)
    if len(platforms) > 1:
        return _run_multi(args, platforms)
    options = options_from_args(args)
    _check_push_args(args)
    if args.dry_run:
        if args.push:
            progress(f"would push: {', '.join(options.tags)}, then validate them from the registry")
        return _dry_run(options, args.format)
    plan = make_plan(options)
    for line in plan.describe():
        progress(line)
    client = connect()
    with task("build") as building:
        result = run_build(plan, client, log=build_log(building))
        building.outcome = "done" if result.ok else f"stopped at {result.stage}"
    pushing = args.push and result.ok
    if not pushing or args.format == "text":  # otherwise one document, printed after the push
        _report(result, args.format, str(options.path))
    if result.error and args.format != "text":
        print(f"bai-imagekit build: {result.error}", file=sys.stderr)
    if pushing:
        return _push(result, client, args, str(options.path))
    if args.push:
        progress("not pushed: the build did not finish with a tagged image")
    return EXIT_OK if result.ok else EXIT_FINDINGS


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "build",
        help="build a kernel image: the Dockerfile, then the kernel layer (labels, service-defs, policy)",
        description=(
            "Validate the kernel directory, build its Dockerfile, add the kernel layer from kernel.toml and "
            "the flags as the last step, validate the image and tag it only if it has no errors. "
            "Progress goes to stderr; results to stdout."
        ),
    )
    p.add_argument("path", nargs="?", default=".", metavar="DIR|DOCKERFILE", help="kernel directory (default .) or a Dockerfile")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="TAG", help="tag the image (repeatable)")
    p.add_argument("-f", "--file", metavar="DOCKERFILE", help="Dockerfile inside DIR (default: Dockerfile)")
    p.add_argument("--spec", metavar="FILE", help="kernel spec (default: DIR/kernel.toml if present)")
    g = p.add_argument_group("kernel layer")
    g.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="add a label (repeatable; overrides kernel.toml)")
    g.add_argument("--runtime-type", metavar="TYPE", help="ai.backend.runtime-type")
    g.add_argument("--runtime-path", metavar="PATH", help="ai.backend.runtime-path")
    g.add_argument("--base-distro", metavar="DISTRO", help="ai.backend.base-distro, e.g. ubuntu22.04")
    g.add_argument("--service", action="append", default=[], metavar="NAME[=PORT]", help="add a library service-def and its http service port (repeatable)")
    pol = g.add_mutually_exclusive_group()
    pol.add_argument("--policy", metavar="FILE", help="jail policy to install (default: kernel.toml's, DIR/policy.yml, or the default policy)")
    pol.add_argument("--no-policy", action="store_true", help="install no jail policy")
    b = p.add_argument_group("docker build")
    b.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE", help="build argument for the Dockerfile (repeatable)")
    b.add_argument("--platform", metavar="OS/ARCH[,OS/ARCH]",
                   help="target platform, e.g. linux/arm64; linux/amd64,linux/arm64 builds both (each tagged "
                   "<tag>-<arch> on the engine; with --push <tag> becomes a manifest list of the two, validated per "
                   "platform). --build-arg PLATFORM:KEY=VALUE sets an argument for one platform only")
    b.add_argument("--target", help="build this stage of the Dockerfile")
    b.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    b.add_argument("--pull", action="store_true", help="pull newer base images (off by default)")
    b.add_argument(
        "--ca-bundle", metavar="FILE|auto",
        help="CA bundle for RUN steps behind a TLS-intercepting proxy, given as a BuildKit secret and never "
        "kept in the image (default $BAI_IMAGEKIT_CA_BUNDLE, then ca-bundle in the config file; auto = $SSL_CERT_FILE "
        "or $REQUESTS_CA_BUNDLE)",
    )
    o = p.add_argument_group("result")
    o.add_argument("--allow-errors", action="store_true", help="build and tag even when validation finds errors")
    o.add_argument("--push", action="store_true",
                   help="push every -t tag through the engine (credentials from the Docker config), then validate the "
                   "pushed image from the registry; a push failure exits 2 with the registry's message")
    o.add_argument("--insecure", action="store_true",
                   help="with --push: read the pushed image back over plain HTTP (how the engine pushes is its own "
                   "insecure-registries setting; 127.0.0.0/8 is insecure to it by default)")
    o.add_argument("--runner", choices=RUNNER_CHOICES, default=None,
                   help=RUNNER_HELP + "; default: `runner` in kernel.toml, else stock")
    o.add_argument("--dry-run", action="store_true", help="print the plan and the generated kernel-layer Dockerfile; build nothing")
    o.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text", help="output on stdout (default text)")
    add_config_options(p, "build")
    p.set_defaults(handler=run)
