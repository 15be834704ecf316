"""Protocol scenarios, written once, run against host runners and real containers.

Each function drives a runner through :class:`AgentClient` exactly as the agent
would and asserts on what comes back.
"""

from __future__ import annotations

import hashlib
import json
import random
import time

import msgpack

from imagekit.harness.client import AgentClient

# ----------------------------------------------------------------------------- any runtime


def collapse(types: list[str]) -> list[str]:
    """Record types with consecutive repeats merged (as the agent merges console items)."""
    return [t for i, t in enumerate(types) if i == 0 or types[i - 1] != t]


def status_and_apps(c: AgentClient) -> None:
    c.send("status")
    kind, payload = c.recv({"status"})
    body = msgpack.unpackb(payload, raw=False)
    assert set(body) == {"started_at"} and isinstance(body["started_at"], float)
    apps = c.get_apps()
    assert apps.status == "done" and isinstance(apps.data, list)


def replies_for_every_op(c: AgentClient) -> None:
    """Every op that expects a reply gets exactly one, malformed or not."""
    c.send("event", json.dumps({"type": "oom", "data": {}}))
    c.send("event", b"{not json")
    c.send("event", json.dumps({"data": {}}))  # missing type: logged, no crash (RE-13)
    res = c.start_service({"name": "nonexistent", "port": 8080, "ports": [8080], "protocol": "http", "options": {}})
    assert res.status == "failed" and res.error
    c.send("start-service", b"{oops")
    _, payload = c.recv({"service-result"})
    body = json.loads(payload)
    assert body["status"] == "failed" and "JSON" in body["error"]
    c.send("start-service", json.dumps({"port": 1}))
    _, payload = c.recv({"service-result"})
    assert "name" in json.loads(payload)["error"]
    c.send("shutdown-service", json.dumps("nonexistent"))
    res2 = c.start_model_service({"name": "m", "model_path": "/models", "service": {"start_command": ["true"]}})
    assert res2.status in {"failed", "started", "running"}
    c.send("start-model-service", b"[1, 2")
    _, payload = c.recv({"model-service-result"})
    assert json.loads(payload)["status"] == "failed"
    c.send("complete", b"\xff\xfe")
    _, payload = c.recv({"completion"})
    body = json.loads(payload)
    assert body["suggestions"] == [] and "UTF-8" in body["error"]
    c.send("input", "nobody is waiting for this")
    c.interrupt()  # nothing running: harmless
    status_and_apps(c)


def garbage_frames_then_query(c: AgentClient, code: str, expected_stdout: str) -> None:
    c.send_frames([b"code"])  # 1 frame
    c.send_frames([b"code", b"print(1)", b"extra"])  # 3 frames
    c.send_frames([b"\xff\xfecode", b"x"])  # non-ASCII op
    c.send_frames([b"no-such-op", b"{}"])  # unknown op
    c.send_frames([b"complete", b"{bad json"])  # bad JSON: still answered
    _, payload = c.recv({"completion"})
    assert "error" in json.loads(payload)
    r = c.query(code)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == expected_stdout
    assert not c.drain_stash(), "no stray records"


def batch_sequencing(c: AgentClient) -> None:
    # a batch sent at once is one run: no intermediate markers, the folded steps' codes in `finished`
    run = c.batch("", "echo building; exit 2", "echo should-not-run")
    assert run.markers == [] and run.status == "finished"
    assert run.steps == {"clean": 0, "build": 2, "exec": 127}
    assert "building" in run.stdout and "should-not-run" not in run.stdout
    assert "exec skipped: the preceding build failed (exit 2)" in run.stderr
    run = c.batch("true", "", "echo ok; echo warn >&2")
    assert run.steps == {"clean": 0, "build": 0, "exec": 0}
    assert run.stdout == "ok\n" and run.stderr == "warn\n"
    # a step sent on its own still ends with its own marker
    c.send("clean", "echo cleaning")
    alone = c.collect()
    assert (alone.status, alone.exit_code, alone.stdout) == ("clean-finished", 0, "cleaning\n")
    # FIFO: a queued exec waits behind a running one
    c.send("exec", "sleep 0.3; echo first")
    c.send("exec", "echo second")
    first, second = c.collect(), c.collect()
    assert (first.stdout, second.stdout) == ("first\n", "second\n")
    # exit codes: plain, command not found, killed by a signal
    for command, code in (("exit 5", 5), ("no-such-command-xyz", 127), ("kill -9 $$", -9)):
        c.send("exec", command)
        assert c.collect().exit_code == code, command
    c.send("exec", "echo $_BACKEND_BATCH_MODE")
    assert c.collect().stdout == "1\n"
    c.send("build", "echo \"[$_BACKEND_BATCH_MODE]\"")
    assert c.collect().stdout == "[]\n"


def interrupt_nested_shell(c: AgentClient, pid_probe: str) -> None:
    """interrupt reaches grandchildren of ``sh -c``; the runner stays usable.

    ``pid_probe`` is a batch command printing the pids of processes whose
    command line starts with ``sleep {seconds}``; the duration is unique per call
    (30 s and some milliseconds) so other runners' sleeps on the same machine do not count.
    """
    seconds = f"30.{random.randrange(1000):03d}"
    pid_probe = pid_probe.format(seconds=seconds)
    c.send("exec", f"sh -c 'sleep {seconds}; echo never'")
    time.sleep(0.5)
    t0 = time.monotonic()
    c.interrupt()
    r = c.collect(timeout=10)
    elapsed = time.monotonic() - t0
    assert elapsed < 3.0, elapsed
    assert r.exit_code != 0 and "never" not in r.stdout
    c.send("exec", pid_probe)
    assert c.collect().stdout.strip() == "", "the grandchild sleep survived the interrupt"
    c.send("exec", "echo alive")
    assert c.collect().stdout == "alive\n"


SLEEP_PROBE = (
    "for p in /proc/[0-9]*; do "
    "if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^sleep {seconds}'; then echo ${{p#/proc/}}; fi; done"
)

# ----------------------------------------------------------------------------- python


def python_query_basics(c: AgentClient) -> None:
    r = c.query("x = 40\nprint('hello', flush=False)\nx + 2")
    assert r.exit_code == 0 and r.stdout == "hello\n42\n", (r.records, r.stderr)
    r = c.query("import sys\nprint('out'); print('err', file=sys.stderr); x")
    assert r.stdout == "out\n40\n" and r.stderr == "err\n"
    r = c.query("def f():\n    return 1/0\n\nf()")
    assert r.exit_code == 1
    assert "ZeroDivisionError" in r.stderr and "return 1/0" in r.stderr
    assert "krunner" not in r.stderr and "repl.py" not in r.stderr, r.stderr
    assert c.query("raise SystemExit(3)").exit_code == 3
    assert c.query("import sys; sys.exit()").exit_code == 0
    assert c.query("x").stdout == "40\n", "namespace survives SystemExit"
    r = c.query("def broken(:\n  pass")
    assert r.exit_code == 1 and "SyntaxError" in r.stderr


def python_media(c: AgentClient) -> None:
    r = c.query(
        "class H:\n"
        "    def _repr_html_(self): return '<b>hi</b>'\n"
        "class P:\n"
        "    def _repr_png_(self): return b'\\x89PNG fake'\n"
        "class J:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return {'application/x-unknown': 'zzz', 'text/plain': 'plain fallback'}\n"
        "display(H()); display(P()); display(J())\n"
        "print('after')"
    )
    assert r.exit_code == 0, r.stderr
    assert r.types[:2] == ["media", "media"] and set(r.types[2:]) == {"stdout"}, r.records
    html, png = r.media
    assert html == {"type": "text/html", "data": "<b>hi</b>"}
    assert png["type"] == "image/png" and png["data"].startswith("data:image/png;base64,")
    assert r.stdout == "plain fallback\nafter\n"
    r = c.query("import json\nclass M:\n    def _repr_markdown_(self): return '# T'\nM()")
    assert r.media == [{"type": "text/markdown", "data": "# T"}]


def python_input(c: AgentClient) -> None:
    c.send("code", "name = input('Name? ')\nprint('hi', name)")
    r = c.collect()
    assert r.status == "waiting-input" and r.options == {"is_password": False}
    assert r.stdout == "Name? "
    r = c.feed_input("Alice")
    assert r.status == "finished" and r.exit_code == 0 and r.stdout == "hi Alice\n"
    c.send("code", "import getpass\npw = getpass.getpass()\nprint(len(pw))")
    r = c.collect()
    assert r.status == "waiting-input" and r.options == {"is_password": True}
    r = c.feed_input("secret")
    assert r.stdout == "6\n"
    # stale input is dropped, not kept for the next prompt
    c.send("input", "stale")
    c.send("code", "print(repr(input()))")
    assert c.collect().status == "waiting-input"
    assert c.feed_input("fresh").stdout == "'fresh'\n"
    # interrupt releases a pending prompt
    c.send("code", "input('never answered: ')")
    assert c.collect().status == "waiting-input"
    c.interrupt()
    r = c.collect(timeout=5)
    assert r.status == "finished" and r.exit_code == 1 and "KeyboardInterrupt" in r.stderr
    assert c.query("print('usable')").stdout == "usable\n"


def python_batch_input(c: AgentClient, python: str) -> None:
    c.send("exec", f"{python} -c \"n = input('Who? '); print('got', repr(n))\"")
    r = c.collect()
    assert r.status == "waiting-input", r.records
    assert r.stdout == "Who? "
    r = c.feed_input("Bob")
    assert r.status == "finished" and r.exit_code == 0, r.stderr
    assert r.stdout == "got 'Bob'\n"


def python_interrupt(c: AgentClient) -> None:
    c.send("code", "import time\nprint('sleeping', flush=True)\ntime.sleep(30)\nprint('never')")
    time.sleep(0.5)
    t0 = time.monotonic()
    c.interrupt()
    r = c.collect(timeout=10)
    assert time.monotonic() - t0 < 3.0
    assert r.exit_code == 1 and "KeyboardInterrupt" in r.stderr and "never" not in r.stdout
    assert r.stdout == "sleeping\n"
    assert c.query("print(6 * 7)").stdout == "42\n"
    # a subprocess of the REPL is in the same process group and stops too
    c.send("code", "import subprocess\nsubprocess.run(['sh', '-c', 'sleep 30'])")
    time.sleep(0.5)
    c.interrupt()
    r = c.collect(timeout=10)
    assert r.exit_code == 1


def pkill_python_spares_the_runner(c: AgentClient) -> None:
    """User code runs ``pkill -f python``: its own programs die, the runner (``bai-krunner``) lives on."""
    c.send("exec", "nohup python3 -c 'import time; time.sleep(300)' >/dev/null 2>&1 & echo started")
    assert c.collect(timeout=30).stdout == "started\n"
    killed = c.query("import subprocess\nsubprocess.run(['pkill', '-f', 'python'])", timeout=30)
    assert killed.status == "finished"  # the REPL itself was killed: the run still ends
    # alive python processes left: none of the user's (pid 1 is root's docker-init, out of the user's reach;
    # the killed REPL may linger as a zombie until the runner reaps it)
    c.send("exec", "ps -eo pid=,stat=,args= | awk '$1 != 1 && $2 !~ /Z/ && /[p]ython/' | grep -v awk || echo none; "
                   "pgrep -a bai-krunner | cut -d' ' -f2- | tr -s ' '")
    left = c.collect(timeout=30)
    assert left.stdout.split("\n")[0] == "none" and left.stdout.split("\n")[1].strip() == "bai-krunner", left.stdout
    assert c.query("print(6 * 7)", timeout=60).stdout == "42\n"  # a new REPL
    assert c.status().started_at > 0


def python_big_output(c: AgentClient) -> None:
    r = c.query("import sys\ndata = ''.join(chr(65 + (i * 7) % 26) for i in range(10_000_000))\nn = sys.stdout.write(data)")
    assert r.exit_code == 0, r.stderr
    expected = "".join(chr(65 + (i * 7) % 26) for i in range(10_000_000)).encode()
    got = r.stdout_bytes
    assert len(got) == len(expected)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(expected).hexdigest()
    r = c.query("for i in range(200_000):\n    print(i)")
    lines = r.stdout.split("\n")
    assert lines[-1] == ""
    assert lines[:-1] == [str(i) for i in range(200_000)]


def batch_binary_output(c: AgentClient, python: str) -> None:
    c.send("exec", f"{python} -c \"import sys; sys.stdout.buffer.write(bytes(range(256)) * 40000)\"")
    r = c.collect()
    assert r.exit_code == 0
    assert r.stdout_bytes == bytes(range(256)) * 40000


def python_completion(c: AgentClient) -> None:
    c.query("import os\nmy_dict = {'alpha': 1, 'beta': 2}\nmy_variable = 3")
    assert "my_variable" in c.complete("my_v").suggestions
    assert "os.path" in c.complete("os.pa").suggestions
    assert any(s.startswith("json") for s in c.complete("import js").suggestions)
    assert "alpha" in c.complete("my_dict['al").suggestions
    assert c.complete("x = 1", cursor=0).suggestions is not None
    # answered while a cell is running
    c.send("code", "import time; time.sleep(1.5)")
    time.sleep(0.2)
    assert "my_variable" in c.complete("my_va").suggestions
    assert c.collect().exit_code == 0

# ----------------------------------------------------------------------------- services

SERVE = "import http.server as h, sys; h.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])), h.SimpleHTTPRequestHandler).serve_forever()"

SERVICE_DEFS: dict[str, object] = {
    "web": {"command": ["{runtime_path}", "-c", SERVE, "{ports[0]}"], "url_template": "http://{host}:{port}/"},
    "slow": {"command": ["sh", "-c", "sleep 2; exec \"$0\" -c \"$1\" \"$2\"", "{runtime_path}", SERVE, "{ports[0]}"], "launch_timeout": 15},
    "dies": {"command": ["sh", "-c", "echo about to fail >&2; exit 3"]},
    "missing": {"command": ["/no/such/binary", "--port", "{ports[0]}"]},
    "noop": {"noop": True},
    "scripted": {
        "prestart": [
            {"action": "write_tempfile", "args": {"body": ["import http.server as h\n",
             "h.ThreadingHTTPServer(('0.0.0.0', {ports[0]}), h.SimpleHTTPRequestHandler).serve_forever()\n"]}, "ref": "script"},
            {"action": "log", "args": {"body": "starting {script}"}},
        ],
        "command": ["{runtime_path}", "{script}"],
        "allowed_arguments": ["--unused"],
    },
    "broken": {"command": ["true"], "comand": "typo"},
    "badtemplate": {"command": ["echo", "{ports.count}"]},
    "notjson": "{ this is not json",
}


def write_service_defs(directory) -> None:
    import json as _json
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in SERVICE_DEFS.items():
        text = body if isinstance(body, str) else _json.dumps(body)
        (directory / f"{name}.json").write_text(text)


def _http_get(port: int, timeout: float = 5.0) -> int:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as resp:
        return resp.status


def port_is_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def services_lifecycle(c: AgentClient, ports: dict[str, int], host_port, is_open=port_is_open) -> None:
    """get-apps, start/running/shutdown, failures reported fast and precisely, broken files isolated.

    ``ports`` maps service names to container ports; ``host_port`` maps a container
    port to the 127.0.0.1 port to connect to; ``is_open`` tells whether a container
    port accepts connections (seen from inside: Docker's proxy always accepts).
    """

    def request(name: str, **extra: object) -> dict:
        port = ports.get(name, 9)
        return {"name": name, "port": port, "ports": [port], "protocol": "http", "options": {}, **extra}

    apps = {a.name: a for a in c.get_apps().data}
    assert {"web", "slow", "dies", "missing", "noop", "scripted"} <= set(apps)
    assert not {"broken", "badtemplate", "notjson"} & set(apps)
    assert apps["web"].url_template == "http://{host}:{port}/"
    assert apps["scripted"].allowed_arguments == ["--unused"]
    assert [a.name for a in c.get_apps("web").data] == ["web"]

    assert c.start_service(request("web")).status == "started"
    assert _http_get(host_port(ports["web"])) == 200
    assert c.start_service(request("web")).status == "running"

    t0 = time.monotonic()
    c.send("shutdown-service", json.dumps("web"))
    status_and_apps(c)  # the reader is not blocked by the shutdown
    deadline = time.monotonic() + 3.0
    while is_open(ports["web"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_open(ports["web"]), "port still open 3 s after shutdown-service"
    assert time.monotonic() - t0 < 3.5
    assert c.start_service(request("web")).status == "started", "restart after shutdown"

    t0 = time.monotonic()
    res = c.start_service(request("dies"))
    assert res.status == "failed" and time.monotonic() - t0 < 5
    assert "exited with code 3" in res.error and "about to fail" in res.error, res.error

    res = c.start_service(request("missing"))
    assert res.status == "failed" and "not found" in res.error and "/no/such/binary" in res.error

    assert c.start_service(request("slow")).status == "started"
    assert _http_get(host_port(ports["slow"])) == 200

    assert c.start_service(request("scripted")).status == "started"
    assert _http_get(host_port(ports["scripted"])) == 200
    res = c.start_service(request("web", options={"arguments": {"--evil": "1"}}))
    assert res.status == "running"
    res = c.start_service(request("scripted", options={"arguments": {"--evil": "1"}}))
    assert res.status == "running"

    assert c.start_service(request("noop")).status == "started"
    res = c.start_service(request("broken"))
    assert res.status == "failed" and "comand" in res.error and "unknown key" in res.error
    res = c.start_service(request("badtemplate"))
    assert res.status == "failed" and "attribute access" in res.error
    res = c.start_service(request("notjson"))
    assert res.status == "failed" and "invalid JSON" in res.error
    res = c.start_service(request("nosuchservice"))
    assert res.status == "failed" and "unsupported service" in res.error
    assert c.start_service({"name": "anything", "port": 1, "ports": [1], "protocol": "preopen", "options": {}}).status == "started"
    for name in ("web", "slow", "scripted"):
        c.send("shutdown-service", json.dumps(name))
