"""Query mode, user input, batch mode and PTY, driven over the agent's ZeroMQ protocol."""

from __future__ import annotations

import time

from krunner.runtimes.languages import lookup
from krunner.runtimes.registry import engine_class

from ...runner_target import RunnerTarget
from ..model import CheckFailed, CheckSkipped
from ..samples import EXPECTED, Sample, sample_for
from ..session import SmokeSession
from . import Check


def _sample(session: SmokeSession) -> Sample:
    sample = sample_for(session.facts.runtime_type)
    if sample is None:
        raise CheckSkipped(f"no sample program for runtime-type {session.facts.runtime_type!r}")
    return sample


def _needs_feature(session: SmokeSession, feature: str) -> None:
    if feature not in session.facts.features:
        raise CheckSkipped(f"the image does not declare {feature!r} in ai.backend.features")


def _query_sample(session: SmokeSession) -> Sample:
    _needs_feature(session, "query")
    sample = _sample(session)
    if sample.query is None:
        raise CheckSkipped(f"runtime-type {session.facts.runtime_type!r} has no query mode")
    return sample


def query_output(session: SmokeSession) -> str:
    sample = _query_sample(session)
    r = session.agent().query(sample.query, timeout=120)
    if r.exit_code != 0 or EXPECTED not in r.stdout:
        raise CheckFailed(
            f"expected {EXPECTED!r} on stdout and exit 0, got exit {r.exit_code}",
            f"stdout: {r.stdout[-2000:]!r}\nstderr: {r.stderr[-2000:]!r}",
        )
    return f"stdout {r.stdout.strip()[:60]!r}"


def query_state(session: SmokeSession) -> str:
    _query_sample(session)
    language = lookup(session.facts.runtime_type)
    if language is None or not engine_class(language).keeps_state:
        raise CheckSkipped("only REPL runtimes keep state between queries")
    c = session.agent()
    c.query("_bai_smoke_state = 6 * 7", timeout=60)
    r = c.query("print(_bai_smoke_state)", timeout=60)
    if r.stdout.strip() != "42":
        raise CheckFailed("a variable set in one query is gone in the next", f"stdout: {r.stdout!r} stderr: {r.stderr!r}")
    return "variables persist between queries"


def query_error(session: SmokeSession) -> str:
    sample = _query_sample(session)
    if sample.fail is None:
        raise CheckSkipped("no failing sample for this runtime")
    r = session.agent().query(sample.fail, timeout=120)
    if r.exit_code in (0, None):
        raise CheckFailed(f"a failing snippet reported exit code {r.exit_code}", f"records: {r.records!r}"[:2000])
    return f"exit code {r.exit_code}"


def query_rich_output(session: SmokeSession) -> str:
    sample = _query_sample(session)
    if sample.rich is None:
        raise CheckSkipped("rich output is only defined for REPL runtimes")
    r = session.agent().query(sample.rich, timeout=60)
    if session.runner is RunnerTarget.STOCK and {"html", "media"} & set(r.types):
        # upstream's runner sends text/html as raw HTML, not as JSON media (docs/protocol.md, RE-1)
        kinds = sorted({t for t in r.types if t in ("html", "media")})
        return f"{'/'.join(kinds)} record(s) with raw HTML (the stock runner's form of rich output)"
    if not r.media:
        raise CheckFailed("no media record for an object with _repr_html_", f"records: {r.records!r}"[:2000])
    return f"media types {[m.get('type') for m in r.media]}"


def query_completion(session: SmokeSession) -> str:
    sample = _query_sample(session)
    if sample.completion is None:
        raise CheckSkipped("completion is only defined for REPL runtimes")
    prefix, wanted = sample.completion
    if session.runner is RunnerTarget.STOCK:
        raise CheckSkipped("the stock runner answers every completion request with an empty list "
                           "(not implemented upstream in backend.ai-kernel 26.9.6)")
    res = session.agent().complete(prefix, timeout=30)
    if not any(s == wanted or s.endswith(wanted) for s in res.suggestions):
        raise CheckFailed(f"completing {prefix!r} did not offer {wanted!r}", f"suggestions: {res.suggestions[:30]!r}")
    return f"{len(res.suggestions)} suggestion(s) for {prefix!r}"


def query_interrupt(session: SmokeSession) -> str:
    sample = _query_sample(session)
    if sample.slow is None:
        raise CheckSkipped("no long-running sample for this runtime")
    c = session.agent()
    c.send("code", sample.slow)
    time.sleep(1.0)
    t0 = time.monotonic()
    c.interrupt()
    try:
        c.collect(timeout=10)
    except TimeoutError:
        raise CheckFailed("the snippet was still running 10 s after interrupt") from None
    took = time.monotonic() - t0
    r = c.query(sample.query or "", timeout=60)
    if EXPECTED not in r.stdout:
        raise CheckFailed("the runner did not answer a query after the interrupt", r.stderr[-1000:])
    return f"stopped {took:.2f} s after interrupt; runner still usable"


def user_input(session: SmokeSession) -> str:
    _needs_feature(session, "user-input")
    sample = _sample(session)
    if sample.input_prompt is None:
        raise CheckSkipped("no input sample for this runtime")
    c = session.agent()
    c.send("code", sample.input_prompt)
    r = c.collect(timeout=60)
    if r.status != "waiting-input":
        raise CheckFailed(f"expected waiting-input, got {r.status!r}", f"records: {r.records!r}"[:2000])
    r = c.feed_input("smoke", timeout=60)
    if "got smoke" not in r.stdout:
        raise CheckFailed("the answer did not reach the program", f"stdout: {r.stdout!r}")
    return "prompt answered"


def batch(session: SmokeSession) -> str:
    _needs_feature(session, "batch")
    sample = _sample(session)
    session.write_work_file(sample.file, sample.program)
    run = session.agent().batch(clean="", build="*", exec="*", timeout=300)
    for step in ("build", "exec"):
        if run.steps.get(step) != 0:
            raise CheckFailed(
                f"batch {step} '*' exited {run.steps.get(step)}",
                f"stdout: {run.stdout[-2000:]!r}\nstderr: {run.stderr[-2000:]!r}",
            )
    if EXPECTED not in run.stdout:
        raise CheckFailed(f"exec '*' ran but did not print {EXPECTED!r}", run.stdout[-2000:])
    return f"build/exec '*' on {sample.file}"


def pty(session: SmokeSession) -> str:
    language = lookup(session.facts.runtime_type)
    if language is None or not language.pty:
        raise CheckSkipped(f"runtime-type {session.facts.runtime_type!r} has no PTY mode")
    c = session.pty()
    time.sleep(0.5)
    c.type("echo pty-$((6*7))-ok\r")
    try:
        c.read_until(b"pty-42-ok", timeout=15)
    except TimeoutError:
        raise CheckFailed("no echo from the PTY shell within 15 s") from None
    return "shell answered over the PTY sockets"


CHECKS = [
    Check("query.output", "query mode: output", query_output),
    Check("query.state", "query mode: state kept", query_state),
    Check("query.error", "query mode: error exit code", query_error),
    Check("query.rich", "query mode: rich output", query_rich_output),
    Check("query.completion", "query mode: completion", query_completion),
    Check("query.interrupt", "query mode: interrupt", query_interrupt),
    Check("input", "user input", user_input),
    Check("batch", "batch mode: build/exec '*'", batch),
    Check("pty", "PTY mode", pty),
]
