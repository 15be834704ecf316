"""``bai-imagekit validate TARGET…``: check images, Dockerfiles, kernel dirs or label dumps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..findings import Severity, exceeds
from ..report import FORMATS, Report, render
from ..runner_target import RUNNER_CHOICES, RUNNER_HELP, RunnerTarget
from ..targets import KINDS, open_targets

EXIT_OK, EXIT_FINDINGS = 0, 1

EXAMPLES = """\
targets (the kind is detected; --target-kind forces it):
  an image reference     bai-test/python:latest       (read through the local Docker engine)
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
  bai-imagekit validate --model images/inference/model my/inference:dev   (model ports vs. the image's labels)

Suppress a finding on the next Dockerfile instruction with
  # bai-imagekit ignore=BAI012[,BAI013] why this is fine

exit codes: 0 no finding at or above --fail-on, 1 such findings, 2 usage or environment error.
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
                   help="image reference, Dockerfile, kernel directory, JSON label dump or model folder")
    p.add_argument("--model", action="append", default=[], metavar="DIR",
                   help="a model folder (model-definition.yaml, deployment-config.yaml), checked against every TARGET "
                   "(its labels and an image's Cmd) or alone (repeatable)")
    p.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format (default: text)")
    p.add_argument(
        "--fail-on",
        choices=[s.value for s in Severity],
        default="error",
        help="lowest severity that makes the exit code 1 (default: error)",
    )
    p.add_argument("--target-kind", choices=KINDS, default=None, help="treat every TARGET as this kind instead of detecting it")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write the report to FILE instead of standard output")
    p.add_argument("--runner", choices=RUNNER_CHOICES, default=None,
                   help=RUNNER_HELP + "; default: the image's own (`runner` in kernel.toml), else stock")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    report = Report([])
    if not args.targets and not args.model:
        raise UsageError("a TARGET is required (or --model DIR)")
    with open_targets(list(args.targets), args.target_kind, model_dirs=list(args.model)) as loaded:
        for target in loaded:
            if args.runner:
                target.inputs.runner = RunnerTarget(args.runner)
            report.add(target.name, target.findings())
    if args.output:
        out = Path(args.output)
        try:
            with out.open("w", encoding="utf-8") as fh:
                fh.write(render(report, args.format, fh))
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc}") from exc
    else:
        sys.stdout.write(render(report, args.format, sys.stdout))
        sys.stdout.flush()
    return EXIT_FINDINGS if exceeds(report.plain, Severity(args.fail_on)) else EXIT_OK
