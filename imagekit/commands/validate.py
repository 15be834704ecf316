"""``bai-imagekit validate TARGET…``: check images, Dockerfiles, kernel dirs or label dumps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import add_config_options
from ..errors import UsageError
from ..findings import Severity, exceeds
from ..registry import DEFAULT_TIMEOUT
from ..registry.rescan import ImageView
from ..report import FORMATS, Report, render
from ..runner_target import RUNNER_CHOICES, RUNNER_HELP, RunnerTarget
from ..targets import KINDS, open_targets

EXIT_OK, EXIT_FINDINGS = 0, 1

EXAMPLES = """\
targets (the kind is detected; --target-kind forces it):
  an image reference     bai-test/python:latest       (read through the local Docker engine)
  a registry image       cr.example.com/ns/python:3.12 (read over the registry API: no pull, no engine;
                                                      also any reference with --from-registry)
  a Dockerfile           kernels/python/Dockerfile
  a kernel directory     kernels/python/              (Dockerfile, kernel.toml, service-defs/, policy.yml)
  a label dump           labels.json                  (docker inspect output, or {"label": "value"})
  a model folder         models/llama/                (model-definition.yaml, deployment-config.yaml)

examples:
  bai-imagekit validate kernels/python/
  bai-imagekit validate bai-test/python:latest --fail-on warning
  bai-imagekit validate Dockerfile --format sarif -o imagekit.sarif
  docker inspect my/image:1.0 > labels.json && bai-imagekit validate labels.json --format json
  bai-imagekit validate kernels/*/ --format github     (annotations in a GitHub Actions step)
  bai-imagekit validate kernels/*/ --format github --sarif imagekit.sarif   (annotations and code scanning)
  bai-imagekit validate --print-config                 (the configuration in effect, and where each value is from)
  bai-imagekit validate --changed k/kernel.toml k/service-defs/app.json   (the kernel dirs of these files: pre-commit)
  bai-imagekit validate --model images/inference/model my/inference:dev   (model ports vs. the image's labels)
  bai-imagekit validate cr.example.com/ns/python:3.12 --max-size 2GiB   (every platform, and the rescan's verdict)
  bai-imagekit validate --insecure 127.0.0.1:5000/ns/python:dev --labels-only

Suppress a finding on the next Dockerfile instruction with
  # bai-imagekit ignore=BAI012[,BAI013] why this is fine
or for the whole project in .bai-imagekit.toml (or [tool.bai-imagekit] in pyproject.toml), found
from the working directory upward: [rules.disabled], [rules.severity], fail-on, runner … (docs/config.md).

exit codes: 0 no finding at or above --fail-on, 1 such findings, 2 usage or environment error
(a broken configuration file: `FILE:LINE: error: …`).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check labels, service-defs and policy of images, Dockerfiles or kernel dirs",
        description="Check kernel-image labels, service-def files and the jail policy without building or running anything.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="image reference, Dockerfile, kernel directory, JSON label dump, model folder, "
                        "or oci-layout:DIR[:TAG] / oci-archive:FILE.tar[:TAG] (a local multi-platform image)")
    p.add_argument("--model", action="append", default=[], metavar="DIR",
                   help="a model folder (model-definition.yaml, deployment-config.yaml), checked against every TARGET "
                   "(its labels and an image's Cmd) or alone (repeatable)")
    p.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format (default: text)")
    p.add_argument(
        "--fail-on",
        choices=[s.value for s in Severity],
        default=None,
        help="lowest severity that makes the exit code 1 (default: fail-on in the config file, else error)",
    )
    p.add_argument("--changed", action="store_true",
                   help="TARGETs are changed files (a pre-commit hook's): validate the kernel directory each belongs "
                   "to, once; files outside any kernel directory are skipped")
    p.add_argument("--target-kind", choices=KINDS, default=None, help="treat every TARGET as this kind instead of detecting it")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write the report to FILE instead of standard output")
    p.add_argument("--sarif", metavar="FILE", default=None,
                   help="also write a SARIF 2.1.0 report to FILE (for code scanning), whatever --format prints")
    p.add_argument("--runner", choices=RUNNER_CHOICES, default=None,
                   help=RUNNER_HELP + "; default: the image's own (`runner` in kernel.toml), else stock")
    add_registry_options(p)
    p.add_argument("--from-registry", action="store_true",
                   help="read every TARGET from its registry (also Docker Hub names such as python:3.12)")
    p.add_argument("--labels-only", action="store_true",
                   help="registry images: check the labels only, without downloading layers (no content rules)")
    p.add_argument("--platform", action="append", default=[], metavar="OS/ARCH",
                   help="registry images: check only this platform (linux/amd64, arm64 …; repeatable)")
    add_config_options(p, "validate")
    p.add_argument("--print-config", action="store_true",
                   help="print the configuration (file and flags merged) and where each value came from; validate nothing")
    p.set_defaults(handler=run)


def add_registry_options(p: argparse.ArgumentParser) -> None:
    """Options for reading registries (shared with ``registry scan``)."""
    p.add_argument("--insecure", action="store_true",
                   help="registry images: plain HTTP (default: HTTPS verified against SSL_CERT_FILE or the system CAs)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"registry images: seconds to wait for an answer (default: {DEFAULT_TIMEOUT:g})")
    p.add_argument("--max-size", default=None, metavar="SIZE",
                   help="registry images: compressed-size budget, e.g. 2GiB (BAI315 names the largest layers)")


def registry_options(args: argparse.Namespace):  # -> imagekit.registry.target.RegistryOptions
    from ..registry.target import RegistryOptions
    from ..rules.registry_image import parse_size

    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    return RegistryOptions(
        insecure=args.insecure, timeout=args.timeout,
        max_size=parse_size(args.max_size) if args.max_size else None,
        labels_only=getattr(args, "labels_only", False), platforms=list(getattr(args, "platform", []) or []),
    )


def run(args: argparse.Namespace) -> int:
    if args.print_config:
        from ..config.show import render as render_config

        sys.stdout.write(render_config(args.settings, args.format))
        return EXIT_OK
    report = Report([])
    if args.changed:
        from ..changed_files import targets_for_changed

        args.targets, _skipped = targets_for_changed(list(args.targets))
        if not args.targets and not args.model:
            return EXIT_OK  # nothing of a kernel directory changed
    if not args.targets and not args.model:
        raise UsageError("a TARGET is required (or --model DIR)")
    if args.from_registry and args.target_kind not in (None, "registry"):
        raise UsageError("--from-registry and --target-kind cannot be used together")
    kind = "registry" if args.from_registry else args.target_kind
    views: list = []  # the rescan view of each registry image, in order
    with open_targets(list(args.targets), kind, model_dirs=list(args.model), registry=registry_options(args)) as loaded:
        for target in loaded:
            if args.runner:
                target.inputs.runner = RunnerTarget(args.runner)
            report.add(target.name, target.findings())
            image = getattr(target, "image", None)  # registry targets: the rescan view
            if isinstance(image, ImageView) and all(image is not v for v in views):
                views.append(image)
    if args.sarif:
        _write(Path(args.sarif), lambda fh: render(report, "sarif", fh))
    if args.output:
        _write(Path(args.output), lambda fh: _render(report, views, args.format, fh))
    else:
        sys.stdout.write(_render(report, views, args.format, sys.stdout))
        sys.stdout.flush()
    return EXIT_FINDINGS if exceeds(report.plain, Severity(args.fail_on)) else EXIT_OK


def _write(out: Path, text) -> None:
    try:
        with out.open("w", encoding="utf-8") as fh:
            fh.write(text(fh))
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc}") from exc


def _render(report: Report, views: list, fmt: str, stream) -> str:
    """The report; for registry images the rescan view comes first (text) or as ``rescan`` (json)."""
    text = render(report, fmt, stream)
    if not views:
        return text
    from ..registry.render import render_view_text, view_json

    if fmt == "text":
        return "".join(render_view_text(v, stream) for v in views) + "\n" + text
    if fmt == "json":
        doc = json.loads(text)
        doc["rescan"] = [view_json(v) for v in views]
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return text
