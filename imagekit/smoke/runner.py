"""Run the smoke checks for one image (or several concurrently), always cleaning up.

Order: label validation → container start and readiness → protocol checks →
declared services → intrinsic services → environment probes → the author's
checks. Every check is timed; the report is built from results, never printed
along the way (progress goes through the *progress* callback).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound

from ..findings import Severity
from ..harness.krunner_mount import KrunnerMount
from ..runner_target import RunnerTarget
from .checks import Check, all_checks
from .checks.author import command_check, file_check
from .checks.inference import ModelUnderTest
from .checks.services import service_checks
from .model import CheckFailed, CheckResult, CheckSkipped, ImageReport, Outcome
from .session import ImageFacts, ProbeError, SmokeSession
from .testfile import ImageTestFile

Progress = Callable[[str, CheckResult], None]


@dataclass
class SmokeOptions:
    krunner: KrunnerMount
    test_file: ImageTestFile | None = None  # for every image
    test_files: dict[str, ImageTestFile] = field(default_factory=dict)  # per image (wins over test_file)
    keep: bool = False  # leave the container running for inspection
    ready_timeout: float = 60.0
    extra_mounts: list[tuple[Path, str]] = field(default_factory=list)
    model: "ModelUnderTest | None" = None  # --model DIR --runtime-variant NAME (checks/inference.py)
    #: the runner the labels are checked for: the one the smoke test starts (krunner's bundle)
    runner: RunnerTarget = RunnerTarget.KRUNNER
    #: ``--platform`` (``linux/arm64``): the image's platform to start; None = the engine's default
    platform: str | None = None
    #: > 1 when that platform runs under emulation: every wait (readiness included) is multiplied
    timeout_scale: float = 1.0

    @property
    def emulated(self) -> bool:
        return self.timeout_scale != 1.0


def _timed(check_id: str, title: str, fn: Callable[[], str]) -> CheckResult:
    t0 = time.monotonic()
    try:
        message, outcome, details = fn(), Outcome.PASSED, ""
    except CheckSkipped as exc:
        message, outcome, details = str(exc), Outcome.SKIPPED, ""
    except CheckFailed as exc:
        message, outcome, details = str(exc), Outcome.FAILED, exc.details
    except (TimeoutError, ProbeError, DockerException, OSError) as exc:
        message, outcome, details = f"{type(exc).__name__}: {exc}", Outcome.FAILED, ""
    except Exception as exc:  # noqa: BLE001 - a bug or surprise in the harness: reported, never fatal
        message, outcome, details = f"harness error: {type(exc).__name__}: {exc}", Outcome.ERROR, traceback.format_exc()
    return CheckResult(
        id=check_id, title=title, outcome=outcome, seconds=round(time.monotonic() - t0, 3), message=message, details=details
    )


def _labels_check(image: str, runner: RunnerTarget) -> str:
    """The validate command's rules on the image (labels, service-defs, policy, image contents), for the
    runner the test starts."""
    from ..targets import open_targets

    with open_targets([image], kind="image") as (target,):
        target.inputs.runner = runner
        findings = target.findings()
    errors = [f for f in findings if f.severity is Severity.ERROR]
    warnings = [f for f in findings if f.severity is Severity.WARNING]
    if errors:
        lines = "\n".join(f"{f.location or image}: {f.rule}: {f.message}" for f in errors)
        raise CheckFailed(f"{len(errors)} error(s), first {errors[0].rule}: {errors[0].message}", lines)
    return f"no errors ({len(warnings)} warning(s))"


def _checks_for(facts: ImageFacts, options: SmokeOptions) -> list[Check]:
    checks = all_checks()
    services = [e.name for e in facts.services]
    split = next(i for i, c in enumerate(checks) if c.id.startswith("intrinsic."))
    checks[split:split] = service_checks(services)
    test_file = options.test_files.get(facts.image, options.test_file)
    if test_file is not None:
        checks += [command_check(t, i) for i, t in enumerate(test_file.commands, 1)]
        checks += [file_check(t, i) for i, t in enumerate(test_file.files, 1)]
    return checks


def run_image(
    image: str,
    options: SmokeOptions,
    client: docker.DockerClient,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ImageReport:
    """Smoke-test *image*; the container is removed at the end (unless ``options.keep``)."""
    t0 = time.monotonic()
    report = ImageReport(image=image)

    def record(result: CheckResult) -> CheckResult:
        report.results.append(result)
        if progress is not None:
            progress(image, result)
        return result

    try:
        labels = dict(client.images.get(image).labels or {})
    except ImageNotFound:
        report.harness_error = f"image {image!r} not found on the Docker engine (build or load it first)"
        return report
    except DockerException as exc:
        report.harness_error = f"cannot inspect {image!r}: {exc}"
        return report
    if options.platform:
        wanted_arch = options.platform.split("/")[1]
        have = f"{client.images.get(image).attrs.get('Os', 'linux')}/{client.images.get(image).attrs.get('Architecture')}"
        if have.split("/")[1] != wanted_arch:
            report.harness_error = (f"image {image!r} is {have}, not {options.platform} (build it with "
                                    f"`bai-imagekit build --platform {options.platform}`)")
            return report
    facts = ImageFacts(image, labels)
    record(_timed("labels", f"label validation ({options.runner.value} runner)",
                  lambda: _labels_check(image, options.runner)))

    session: SmokeSession | None = None

    def start() -> str:
        nonlocal session
        mounts = [*options.extra_mounts, *([options.model.mount()] if options.model else [])]
        session = SmokeSession.start(facts, options.krunner, client, extra_mounts=mounts, platform=options.platform,
                                     timeout_scale=options.timeout_scale)
        session.runner = options.runner
        if options.model:
            session.notes.update(options.model.notes())
        started = time.monotonic()
        try:
            session.agent(timeout=options.ready_timeout).wait_ready(timeout=options.ready_timeout)
        except TimeoutError:
            raise CheckFailed(
                f"the runner did not answer 'status' within {options.ready_timeout:g} s", session.kernel.logs()[-4000:]
            ) from None
        emulated = (f"; emulated {options.platform}, timeouts ×{options.timeout_scale:g}" if options.emulated else "")
        return f"ready in {time.monotonic() - started:.2f} s ({session.kernel.container.name}{emulated})"

    try:
        started = record(_timed("start", "container start and readiness", start))
        if started.outcome is not Outcome.PASSED:
            return report
        assert session is not None
        for check in _checks_for(facts, options):
            if cancel is not None and cancel.is_set():
                break
            record(_timed(check.id, check.title, lambda c=check: c.run(session)))
        report.urls = {k.removeprefix("url:"): v for k, v in session.notes.items() if k.startswith("url:")}
    finally:
        if session is not None and not options.keep:
            session.close()
        report.seconds = round(time.monotonic() - t0, 3)
    return report


def run_images(
    images: Sequence[str],
    options: SmokeOptions,
    client: docker.DockerClient,
    jobs: int = 1,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    finished: Callable[[ImageReport], None] | None = None,
) -> list[ImageReport]:
    """Smoke-test several images, *jobs* at a time; reports come back in the order given.
    *finished* is called with each image's report as soon as that image is done."""

    def one(image: str) -> ImageReport:
        report = run_image(image, options, client, progress, cancel)
        if finished is not None:
            finished(report)
        return report

    if jobs <= 1 or len(images) <= 1:
        return [one(i) for i in images]
    cancel = cancel or threading.Event()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="bai-smoke") as pool:
        futures = [pool.submit(one, i) for i in images]
        try:
            return [f.result() for f in futures]
        except KeyboardInterrupt:
            cancel.set()  # workers stop after their current check and remove their containers
            raise
