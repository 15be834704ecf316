"""``bai-imagekit test IMAGE [IMAGE…]``: smoke-test images the way an agent would use them."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ..config import add_config_options
from ..console import Board, is_quiet, is_verbose, progress
from ..errors import EnvironmentProblem, UsageError
from ..runner_target import RUNNER_CHOICES, RunnerTarget
from ._kernels import docker_client, krunner_mount, stock_runner_mount

#: waits are this much longer for a platform that runs under QEMU user-mode emulation
EMULATION_TIMEOUT_SCALE = 5.0

EPILOG = """\
examples:
  bai-imagekit test my/kernel:latest
  bai-imagekit test --format junit --report smoke.xml img1 img2 -j 2
  bai-imagekit test my/kernel:latest --test-file image-test.toml --keep
  bai-imagekit test my/inference:dev --model models/demo [--runtime-variant vllm]
  bai-imagekit test -j 2 a:1 b:1 --test-file a:1=a/image-test.toml --test-file b:1=b/image-test.toml
  bai-imagekit test --platform linux/arm64 my/kernel:arm64   (under emulation: the aarch64 bundle)

before the first run: bai-imagekit krunner build && bai-imagekit krunner install

exit codes: 0 every check passed, 1 a check failed, 2 the harness could not run
(engine unreachable, image missing, bad test file, krunner bundle or volume missing)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test",
        help="smoke-test images: start them like an agent and drive every protocol and service",
        description="Start each image the way a Backend.AI agent does (krunner mounted, ports on 127.0.0.1) "
        "and check labels, readiness, query/batch/input/PTY modes, every declared service, the intrinsic "
        "sshd and web terminal, environment probes and the author's own checks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image reference(s) on the Docker engine")
    p.add_argument("--format", choices=("text", "json", "junit"), default="text", help="report format (default: text)")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the report to FILE (a text summary still goes to stdout)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="test N images concurrently")
    p.add_argument("--test-file", action="append", default=[], metavar="[IMAGE=]FILE",
                   help="the image author's checks (image-test.toml); IMAGE=FILE for one image only (repeatable)")
    p.add_argument("--keep", action="store_true", help="leave the containers running for inspection")
    p.add_argument("--ready-timeout", type=float, default=60.0, metavar="SECONDS", help="readiness timeout (default 60)")
    p.add_argument("--model", type=Path, metavar="DIR",
                   help="a model folder (model-definition.yaml): mounted at /models and started like the agent does")
    p.add_argument("--runner", choices=RUNNER_CHOICES, default=None,
                   help="the kernel runner to start: 'krunner' (this toolkit's bundle, the default unless the config "
                   "file's `runner` says otherwise; build and install it first with `bai-imagekit krunner build` and "
                   "`bai-imagekit krunner install`) or 'stock' (upstream's runner as a stock Backend.AI 26.9 agent "
                   "deploys it; install it first with `bai-imagekit krunner install --stock`). Labels are validated "
                   "for the same runner.")
    p.add_argument("--platform", default=None, metavar="OS/ARCH",
                   help="start the image's linux/amd64 or linux/arm64 variant with the bundle of that architecture "
                   "(`krunner build/install --arch aarch64` for arm64). A foreign platform runs under QEMU "
                   f"emulation, which the host must provide (binfmt); its timeouts are multiplied by "
                   f"{EMULATION_TIMEOUT_SCALE} and reported as emulated")
    p.add_argument("--runtime-variant", default=None, metavar="NAME",
                   help="the runtime variant whose defaults the model is resolved with (default: custom; "
                   "see docs/model-services.md)")
    add_config_options(p, "test")
    p.set_defaults(handler=run)


def _test_files(specs: list[str], images: list[str], load):
    """``--test-file`` values → (the file for every image, {image: file}); an unknown IMAGE is a usage error."""
    common, per_image = None, {}
    for spec in specs:
        image, sep, path = spec.rpartition("=")
        if not sep:
            if common is not None:
                raise UsageError("--test-file FILE (for every image) given twice; use IMAGE=FILE for one image")
            common = load(Path(spec))
        elif image not in images:
            raise UsageError(f"--test-file {spec!r}: {image!r} is not one of the images to test")
        else:
            per_image[image] = load(Path(path))
    return common, per_image


def _model(args: argparse.Namespace):
    """``--model DIR [--runtime-variant NAME]`` → what the inference check starts (or None)."""
    from krunner.services.model_definition import DEFAULT_VARIANT, RUNTIME_VARIANTS

    from ..smoke.checks.inference import ModelUnderTest

    variant = args.runtime_variant or DEFAULT_VARIANT
    if variant not in RUNTIME_VARIANTS:
        raise UsageError(f"--runtime-variant {variant!r}: choose from {', '.join(RUNTIME_VARIANTS)}")
    if args.model is None:
        if args.runtime_variant:
            raise UsageError("--runtime-variant needs --model DIR")
        return None
    if not args.model.is_dir():
        raise UsageError(f"--model {args.model}: no such directory")
    return ModelUnderTest(args.model, variant)


def _platform(value: str | None) -> tuple[str | None, str | None, float]:
    """``--platform`` → (platform, bundle arch, timeout scale); a foreign one needs the host's binfmt handler."""
    from ..bundle import DOCKER_PLATFORMS, emulation_problem, host_arch

    if value is None:
        return None, None, 1.0
    by_platform = {p: a for a, p in DOCKER_PLATFORMS.items()}
    if value not in by_platform:
        raise UsageError(f"--platform {value!r}: choose one of {', '.join(by_platform)}")
    arch = by_platform[value]
    if arch == host_arch():
        return value, arch, 1.0
    problem = emulation_problem(arch)
    if problem:
        raise EnvironmentProblem(f"--platform {value}: {problem}")
    return value, arch, EMULATION_TIMEOUT_SCALE


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM behaves like Ctrl-C: checks stop and every container is removed."""
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from ..smoke.report import RENDERERS, progress_line, render_text
    from ..smoke.runner import SmokeOptions, run_images
    from ..smoke.testfile import load_test_file

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    test_file, test_files = _test_files(args.test_file, args.images, load_test_file)
    model = _model(args)
    platform, arch, scale = _platform(getattr(args, "platform", None))
    client = docker_client()
    runner = RunnerTarget(args.runner or RunnerTarget.KRUNNER.value)  # the configuration fills it in (imagekit.config)
    if runner is RunnerTarget.STOCK and platform is not None:
        raise UsageError("--platform works with our runner only (the stock runner volume is x86_64)")
    krunner = stock_runner_mount() if runner is RunnerTarget.STOCK else krunner_mount(client, arch)
    options = SmokeOptions(
        krunner=krunner, test_file=test_file, test_files=test_files, keep=args.keep,
        ready_timeout=args.ready_timeout * scale, model=model, runner=runner, platform=platform, timeout_scale=scale,
    )
    if scale != 1.0:
        progress(f"{platform} runs under emulation here: timeouts ×{scale:g} (readiness {options.ready_timeout:g} s)")
    progress(f"testing {len(args.images)} image(s) with {min(args.jobs, len(args.images))} job(s)…")
    board = Board(list(dict.fromkeys(args.images)))
    counts: dict[str, list[int]] = {image: [0, 0] for image in args.images}  # checks run, failed

    def show(image: str, result) -> None:
        """On a TTY: one live line per image (failures, and with --verbose every check, kept above the
        lines); otherwise a plain line per check."""
        counts[image][0] += 1
        counts[image][1] += result.outcome in ("failed", "error")
        line = progress_line(image, result)
        if not board.live:
            if not is_quiet():
                board.note(line)
            return
        if is_verbose() or result.outcome in ("failed", "error"):
            board.note(line)
        run, failed = counts[image]
        board.update(image, f"{run} checks, {failed} failed; {result.title}")

    def finished(report) -> None:
        verdict = "passed" if report.passed else "FAILED"
        if board.live:
            board.update(report.image, f"{verdict} ({len(report.results)} checks, {report.seconds:.1f} s)", done=True)

    cancel = threading.Event()
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with board:
            reports = run_images(args.images, options, client, jobs=args.jobs, progress=show, cancel=cancel,
                                 finished=finished)
    finally:
        signal.signal(signal.SIGTERM, previous)
    rendered = RENDERERS[args.format](reports)
    if args.report:
        args.report.write_text(rendered)
        sys.stdout.write(render_text(reports))
    else:
        sys.stdout.write(rendered)
    if any(r.harness_error for r in reports):
        for r in reports:
            if r.harness_error:
                print(f"bai-imagekit: error: {r.image}: {r.harness_error}", file=sys.stderr)
        return 2
    return 0 if all(r.passed for r in reports) else 1
