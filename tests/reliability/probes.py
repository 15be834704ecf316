"""The issue-15 probes as plain functions: ``probe_x(kernel) -> Figures``.

Used by the tests in this directory (which assert on the figures) and by
``benchmarks/reliability_compare.py`` (which prints ours beside upstream's runner). Every wait is
bounded; a runner that wedged or died is a figure (``wedged (>N s)``, ``container exited``).
"""

from __future__ import annotations

import datetime
import json
import signal
import time

from imagekit.harness.client import ChannelTimeout

from . import fuzz
from .figures import Figures, exited, wedged
from .kernel import ProbeKernel, wait_for
from .memory import MemoryUnavailable, mib

#: services a fuzzed start-service may have started (stopped before memory is compared)
FUZZ_SERVICES = ("sshd", "ttyd", "jupyter", "jupyterlab", "m")


def _stop_services(kernel: ProbeKernel) -> None:
    c = kernel.client(fresh=True)
    for name in FUZZ_SERVICES:
        c.send("shutdown-service", json.dumps(name))
    time.sleep(1.0)


def _top(kernel: ProbeKernel) -> str:
    try:
        top = kernel.kc.container.top(ps_args="-eo pid,rss,args")
    except Exception as exc:  # noqa: BLE001 - only a diagnostic
        return f"unavailable ({exc})"
    return "; ".join(" ".join(str(v) for v in row)[:80] for row in top.get("Processes") or [])


def probe_fuzz(kernel: ProbeKernel, seed: int, count: int = 10_000, *, warmup: int = 1000,
               recover_timeout: float = 30.0, drain_timeout: float = 60.0, pace: int = 16) -> Figures:
    """*count* fuzzed messages of *seed*, one ``interrupt``, then a query that must be answered.

    *pace* 0 sends flat out (the issue's probe); otherwise at most *pace* serial ops wait unanswered.

    Memory: ``idle`` is sampled after a warm-up round of *warmup* messages (another seed), so
    one-time growth (the REPL's module index for completion, the runner's first pydantic models,
    a service the warm-up started) is not counted as a leak; services the fuzz started are shut
    down before both samples. Anon memory of the container's cgroup (page cache excluded)."""
    figs = Figures("fuzz", kernel.runner.value, {"seed": seed, "messages": count})
    kernel.close_client()
    port_in, port_out = kernel.kc.repl_in_port, kernel.kc.repl_out_port
    if warmup:
        fuzz.run_messages(port_in, port_out, fuzz.generate(seed + 1_000_003, fuzz.FuzzConfig(count=warmup)),
                          alive=kernel.alive, recover_timeout=recover_timeout, drain_timeout=drain_timeout)
    if not kernel.alive():
        figs["outcome"] = exited(kernel.exit_code())
        return figs.judge(False, f"{exited(kernel.exit_code())} during the warm-up")
    _stop_services(kernel)
    kernel.close_client()
    idle = kernel.memory.idle()
    t0 = time.monotonic()
    with kernel.memory.watch() as watch:
        result = fuzz.run_messages(port_in, port_out, fuzz.generate(seed, fuzz.FuzzConfig(count=count)),
                                   alive=kernel.alive, recover_timeout=recover_timeout, drain_timeout=drain_timeout,
                                   pace=pace)
    figs["seconds"] = round(time.monotonic() - t0, 1)
    figs["sent"] = result.sent
    figs["replies_missing"] = dict(result.missing)
    figs["serial_unanswered"] = result.serial_missing
    figs["query_answered_after_interrupt_s"] = result.seconds_to_answer if result.marker_answered \
        else wedged(recover_timeout)
    figs["build_ops"] = result.ops["build"]
    figs["build_ended"] = result.received["build-finished"]  # the rest were folded into `finished`
    figs["idle_anon_mib"] = mib(idle.anon)
    figs["peak_over_idle_mib"] = mib(watch.peak.anon - idle.anon)
    if not result.alive:
        figs["outcome"] = exited(kernel.exit_code())
        return figs.judge(False, exited(kernel.exit_code()))
    _stop_services(kernel)
    kernel.close_client()
    try:
        after, seconds = kernel.memory.back_to(idle, within=0.10, slack=0, timeout=20)
        figs["after_anon_mib"] = mib(after.anon)
        figs["memory_back_within_10pct_s"] = round(seconds, 1) if seconds is not None else "no (20 s)"
    except MemoryUnavailable as exc:
        figs["after_anon_mib"] = str(exc)
        seconds = None
    if result.error:
        figs.note(result.error)
    if seconds is None:  # say who holds the memory (the runner, the REPL, or processes user code left)
        figs.note("processes: " + _top(kernel))
    ok = result.ok and seconds is not None
    return figs.judge(ok, result.summary() + ("" if seconds is not None else "; memory not back within 10%"))


def probe_queued_prompts(kernel: ProbeKernel, timeout: float = 15.0) -> Figures:
    """The minimised fuzz wedge: two cells that wait for input are queued, one ``interrupt``,
    then a query. The query must be answered and each cell must end."""
    figs = Figures("queued prompts + interrupt", kernel.runner.value)
    c = kernel.client(fresh=True, timeout=timeout)
    c.send("code", "input()")
    c.send("code", "input()")
    try:
        c.recv({"waiting-input"}, timeout=timeout)
    except ChannelTimeout:
        figs.note("no waiting-input for the first cell")
    c.interrupt()
    t0 = time.monotonic()
    c.send("code", "print('after-interrupt')")
    ends = []
    try:
        while len(ends) < 3:  # both cells and the query; their output is stashed meanwhile
            _, payload = c.recv({"finished"}, timeout=max(0.1, t0 + timeout - time.monotonic()))
            ends.append(json.loads(payload).get("exitCode"))
    except ChannelTimeout:
        pass
    out = b"".join(p for k, p in c.drain_stash() if k == "stdout")
    answered = b"after-interrupt" in out and len(ends) == 3
    figs["cells_ended"] = len(ends)
    figs["exit_codes"] = ends
    figs["query_answered_s"] = round(time.monotonic() - t0, 2) if answered else wedged(timeout)
    if not kernel.alive():
        return figs.judge(False, exited(kernel.exit_code()))
    return figs.judge(answered, "answered" if answered else f"later query {wedged(timeout)}")


def probe_runner_stopped(kernel: ProbeKernel, timeout: float = 20.0) -> Figures:
    """User code sends SIGSTOP to the runner; a later query must be answered."""
    figs = Figures("SIGSTOP to the runner", kernel.runner.value)
    c = kernel.client(fresh=True, timeout=timeout)
    code = ("import os, signal\n"
            "pid = os.getppid()\n"
            "print('parent', open('/proc/%d/cmdline' % pid).read().replace(chr(0), ' ')[:120], flush=True)\n"
            "try:\n    os.kill(pid, signal.SIGSTOP)\n    print('stopped', pid)\n"
            "except OSError as e:\n    print('refused', e.errno)\n")
    c.send("code", code)
    t0 = time.monotonic()
    try:
        first = c.collect(timeout=timeout)
        figs["stopped"] = first.stdout.split("\n")[0][7:60]
        c.send("code", "print('still-here')")
        run = c.collect(timeout=timeout)
        answered = "still-here" in run.stdout
    except ChannelTimeout:
        answered = False
    pid = kernel.runner_pid()
    state = next((st for p, _, st, _ in kernel.processes() if p == pid), "?")
    figs["runner_state_after"] = state
    figs["query_answered_s"] = round(time.monotonic() - t0, 2) if answered else wedged(2 * timeout)
    if not answered and pid is not None and state == "T":
        import os

        os.kill(pid, signal.SIGCONT)  # leave the container stoppable
    if not kernel.alive():
        return figs.judge(False, exited(kernel.exit_code()))
    return figs.judge(answered, "answered" if answered else f"runner stopped, query {wedged(2 * timeout)}")


def wait_alive_gone(kernel: ProbeKernel, timeout: float) -> float | None:
    return wait_for(lambda: not kernel.alive(), timeout)


def probe_closed_fds(kernel: ProbeKernel, timeout: float = 60.0) -> Figures:
    """User code closes fds 1 and 2; the next queries must print again (ours says why)."""
    figs = Figures("user code closes fds 1 and 2", kernel.runner.value)
    c = kernel.client(fresh=True, timeout=timeout)
    t0 = time.monotonic()
    try:
        first = c.query("import os\nos.close(1)\nos.close(2)", timeout=timeout)
        figs["closing_query"] = first.status or "?"
        time.sleep(0.2)
        r = c.query("print('alive')", timeout=timeout)
        notice = "closed its standard output or error" in r.stderr
        again = c.query("print('still')", timeout=timeout).stdout == "still\n"
        answered = r.stdout == "alive\n" and again
    except ChannelTimeout:
        answered, notice = False, False
    figs["output_back_s"] = round(time.monotonic() - t0, 2) if answered else wedged(timeout)
    figs["stderr_notice"] = notice
    if not kernel.alive():
        return figs.judge(False, exited(kernel.exit_code()))
    return figs.judge(answered and notice, "output back" + (" with a notice" if notice else ", no notice")
                      if answered else "no output any more")


PKILL_PY = r"""
import os, signal
me = os.getpid()
hit = []
for pid in os.listdir('/proc'):
    if not pid.isdigit() or int(pid) == me:
        continue
    try:
        cmd = open('/proc/%s/cmdline' % pid, 'rb').read()
        os.kill(int(pid), signal.SIGTERM) if b'python' in cmd else None
        hit.append(int(pid)) if b'python' in cmd else None
    except OSError:
        pass
print('pkill', len(hit), flush=True)
os.kill(me, signal.SIGTERM)
"""


def probe_pkill_python(kernel: ProbeKernel, timeout: float = 60.0) -> Figures:
    """User code runs ``pkill -f python`` (SIGTERM to every process whose command line says
    python, itself last; emulated in Python so any image can run it): the runner must survive,
    the user's own python programs must die, and the next query must run."""
    figs = Figures("user code runs pkill -f python", kernel.runner.value)
    c = kernel.client(fresh=True, timeout=timeout)
    try:
        r = c.query("import subprocess, sys\np = subprocess.Popen([sys.executable, '-c', 'import time; "
                    "time.sleep(300)'], start_new_session=True)\nprint(p.pid)", timeout=timeout)
        int(r.stdout.strip())
        sleepers = [p for p, _, st, cmd in kernel.processes() if "time.sleep(300)" in cmd and st != "Z"]
        c.query(PKILL_PY, timeout=timeout)
    except (ChannelTimeout, ValueError):
        sleepers = []
    gone = wait_for(lambda: not [p for p, _, st, cmd in kernel.processes() if p in sleepers and st != "Z"], 10)
    t0 = time.monotonic()
    answered = False
    if kernel.alive():
        try:
            answered = c.query("print(6 * 7)", timeout=timeout).stdout == "42\n"
        except ChannelTimeout:
            pass
    figs["user_program_killed"] = bool(sleepers) and gone is not None
    figs["runner_alive"] = kernel.alive()
    figs["next_query_s"] = round(time.monotonic() - t0, 2) if answered else (
        exited(kernel.exit_code()) if not kernel.alive() else wedged(timeout))
    if not kernel.alive():
        return figs.judge(False, f"runner killed: {exited(kernel.exit_code())}")
    return figs.judge(answered and figs["user_program_killed"], "runner survives, user's python killed"
                      if answered and figs["user_program_killed"] else "not as asked")


def probe_complete_during_large_query(kernel: ProbeKernel, size: int, timeout: float = 30.0) -> Figures:
    """A ``complete`` sent while a large ``code`` payload is written to the REPL: the query must
    finish and the completion answer (or fail fast), three times in a row."""
    figs = Figures(f"complete during a {size // 1000} KB query", kernel.runner.value, {"source_bytes": size})
    c = kernel.client(fresh=True, timeout=timeout)
    ok_runs, completions = 0, 0
    t0 = time.monotonic()
    try:
        for _ in range(3):
            c.send("code", "x = 1\n" + "#" * size + f"\nprint('done', {size})")
            c.send("complete", json.dumps({"code": "import o", "cursor": 8}))
            run = c.collect(timeout=timeout)
            ok_runs += (run.status, run.stdout) == ("finished", f"done {size}\n")
            _, payload = c.recv({"completion"}, timeout=timeout)
            completions += "os" in (json.loads(payload).get("suggestions") or [])
    except ChannelTimeout:
        pass
    figs["queries_finished"] = f"{ok_runs}/3"
    figs["completions_with_os"] = f"{completions}/3"
    figs["seconds"] = round(time.monotonic() - t0, 2) if ok_runs == 3 and completions == 3 else wedged(timeout)
    if not kernel.alive():
        return figs.judge(False, exited(kernel.exit_code()))
    ok = ok_runs == 3 and completions == 3
    return figs.judge(ok, "nothing wedges" if ok else "wedged")


#: a child that records SIGTERM in /home/work/.reap-<name>; "stubborn" ones then carry on
REAP_CHILD = """import os, signal, sys, time
name, stubborn = sys.argv[1], sys.argv[2] == "stubborn"
def on_term(*_):
    open("/home/work/.reap-" + name, "w").write("term")
    if not stubborn:
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open("/home/work/.ready-" + name, "w").write("ready")
while True:
    time.sleep(0.1)
"""
REAP_PY = "$(command -v python3 || command -v python || echo /opt/py/bin/python)"
REAP_BATCH = (f"{REAP_PY} /home/work/.reap.py polite polite >/dev/null 2>&1 & "
              f"{REAP_PY} /home/work/.reap.py stubborn stubborn & echo started")
REAP_QUERY = ("import subprocess, sys, time\n"
              "subprocess.Popen([sys.executable, '/home/work/.reap.py', 'query', 'polite'])\n"
              "print('query child started', flush=True)\n"
              "time.sleep(300)\n")


def _finished_after(kernel: ProbeKernel, since: datetime.datetime) -> float | None:
    """Seconds from *since* to the container's ``State.FinishedAt`` (engine clock = host clock)."""
    try:
        kernel.kc.container.reload()
        text = kernel.kc.container.attrs["State"]["FinishedAt"]
        stamp = datetime.datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00") if "." in text else None
        return round((stamp - since).total_seconds(), 2) if stamp else None
    except Exception:  # noqa: BLE001 - a missing stamp falls back to the API call's duration
        return None


def probe_sigterm_reaping(kernel: ProbeKernel, timeout: float = 30.0) -> Figures:
    """``docker stop`` (SIGINT, the agent's stop signal) with a batch job's background children
    (one ignores SIGTERM), a service (the web terminal) and a running query with its own child:
    each child gets SIGTERM, the stubborn one SIGKILL, and the runner exits within 2 s."""
    figs = Figures("docker stop reaps everything", kernel.runner.value)
    c = kernel.client(fresh=True, timeout=timeout)
    work = kernel.kc.work_dir
    (work / ".reap.py").write_text(REAP_CHILD)
    (work / ".reap.py").chmod(0o644)
    try:
        c.send("exec", REAP_BATCH)
        figs["batch"] = c.collect(timeout=timeout).stdout.strip()
        svc = c.start_service({"name": "ttyd", "port": 7681, "ports": [7681], "protocol": "http", "options": {}},
                              timeout=timeout)
        figs["service"] = svc.status
        c.send("code", REAP_QUERY)
        c.recv({"stdout"}, timeout=timeout)
    except ChannelTimeout as exc:
        figs.note(f"set-up: {exc}")
    ready = wait_for(lambda: all((work / f".ready-{n}").exists() for n in ("polite", "stubborn", "query")), 15)
    figs["children_ready"] = ready is not None
    kernel.close_client()
    t0 = time.monotonic()
    wall0 = datetime.datetime.now(datetime.timezone.utc)
    try:
        kernel.kc.container.stop(timeout=10)  # StopSignal SIGINT (the agent's), SIGKILL after 10 s
    except Exception as exc:  # noqa: BLE001 - the engine's error is the figure
        figs.note(f"docker stop: {exc}")
    stop_s = round(time.monotonic() - t0, 2)
    figs["docker_stop_call_s"] = stop_s
    stop_s = _finished_after(kernel, wall0) or stop_s  # the container's own exit time, without the API's
    code = kernel.exit_code()
    got = {name: (work / f".reap-{name}").exists() for name in ("polite", "stubborn", "query")}
    figs["exit_s"] = stop_s
    figs["exit_code"] = code
    figs["sigterm_received"] = got
    ok = stop_s <= 2.0 and all(got.values()) and code == 0
    return figs.judge(ok, f"exited in {stop_s} s (code {code}); SIGTERM to {sum(got.values())}/3 children")
