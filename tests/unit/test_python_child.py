"""Tests for the query-mode REPL child and the batch-mode sitecustomize.

The REPL runs under the host interpreter with real pipes on fds 1-4, exactly
as the runner starts it inside a container.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

CHILD_DIR = Path(__file__).resolve().parents[2] / "krunner" / "runtimes" / "python_child"
REPL_PATH = CHILD_DIR / "repl.py"
BATCH_SITE = CHILD_DIR / "batch_site"
TIMEOUT = 10.0
# The child normally runs under the image's Python; allow checking other versions.
CHILD_PYTHON = os.environ.get("KRUNNER_TEST_CHILD_PYTHON", sys.executable)


def _load_repl_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_krunner_repl_under_test", REPL_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


repl_module = _load_repl_module()


class ReplProcess:
    """Runs repl.py with fds 3/4 wired to pipes and records everything.

    A single collector thread mimics the runner: before handling each control
    chunk it drains stdout/stderr, so ``log`` keeps output and events ordered.
    """

    def __init__(self, cwd: str | None = None) -> None:
        ctrl_r, ctrl_w = os.pipe()
        cmd_r, cmd_w = os.pipe()

        def wire_fds() -> None:
            high_ctrl = fcntl.fcntl(ctrl_w, fcntl.F_DUPFD, 10)
            high_cmd = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            os.dup2(high_ctrl, 3)
            os.dup2(high_cmd, 4)

        env = dict(os.environ)
        env.pop("MPLBACKEND", None)
        self.proc = subprocess.Popen(
            [CHILD_PYTHON, str(REPL_PATH)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=False,
            preexec_fn=wire_fds,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
        os.close(ctrl_w)
        os.close(cmd_r)
        self._ctrl = ctrl_r
        self._cmd = cmd_w
        self.log: list[tuple[str, Any]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._next_id = 1
        self._collector = threading.Thread(target=self._collect, daemon=True)
        self._collector.start()
        try:
            self.ready = self.wait_event(lambda ev: ev.get("ev") == "ready")
        except BaseException:
            self.kill()
            self.close()
            raise

    # -- collection ---------------------------------------------------------

    def _collect(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out_fd, err_fd = self.proc.stdout.fileno(), self.proc.stderr.fileno()
        for fd in (out_fd, err_fd):
            os.set_blocking(fd, False)
        decoder = repl_module.FrameDecoder()
        streams = {out_fd: "stdout", err_fd: "stderr"}
        sel = selectors.DefaultSelector()
        for fd in (out_fd, err_fd, self._ctrl):
            sel.register(fd, selectors.EVENT_READ)
        open_fds = {out_fd, err_fd, self._ctrl}
        while open_fds:
            for key, _ in sel.select(timeout=0.1):
                fd = key.fd
                if fd == self._ctrl:
                    self._drain(streams, open_fds, sel)
                    data = os.read(fd, 1 << 20)
                    if not data:
                        sel.unregister(fd)
                        open_fds.discard(fd)
                    for event in decoder.feed(data):
                        self._append("event", event)
                elif fd in open_fds:
                    self._read_stream(fd, streams[fd], open_fds, sel)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _drain(self, streams: dict, open_fds: set, sel: selectors.BaseSelector) -> None:
        for fd, name in streams.items():
            while fd in open_fds and self._read_stream(fd, name, open_fds, sel):
                pass

    def _read_stream(self, fd: int, name: str, open_fds: set, sel: selectors.BaseSelector) -> bool:
        try:
            data = os.read(fd, 1 << 20)
        except BlockingIOError:
            return False
        if not data:
            sel.unregister(fd)
            open_fds.discard(fd)
            return False
        self._append(name, data)
        return True

    def _append(self, kind: str, payload: Any) -> None:
        with self._cond:
            self.log.append((kind, payload))
            self._cond.notify_all()

    # -- commands -------------------------------------------------------------

    def send(self, command: dict) -> None:
        os.write(self._cmd, repl_module.pack_frame(command))

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def start_exec(self, code: str) -> tuple[int, int]:
        request_id = self.new_id()
        with self._cond:
            start = len(self.log)
        self.send({"op": "exec", "id": request_id, "code": code})
        return request_id, start

    def wait_for(self, predicate: Callable[[list], Any], timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate(self.log)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise AssertionError("timed out; log tail: %r" % (self.log[-5:],))
                self._cond.wait(remaining)

    def wait_event(self, match: Callable[[dict], bool], start: int = 0, timeout: float = TIMEOUT) -> dict:
        def find(log: list) -> Any:
            for kind, payload in log[start:]:
                if kind == "event" and match(payload):
                    return payload
            return None

        return self.wait_for(find, timeout)

    def wait_output(self, needle: bytes, start: int = 0, timeout: float = TIMEOUT) -> None:
        self.wait_for(lambda log: needle in self.stream("stdout", log[start:]), timeout)

    def finish(self, request_id: int, start: int, timeout: float = TIMEOUT) -> "CellResult":
        done = self.wait_event(
            lambda ev: ev.get("ev") == "done" and ev.get("id") == request_id, start, timeout
        )
        with self._cond:
            entries = list(self.log[start:])
        end = next(i for i, (k, p) in enumerate(entries) if k == "event" and p is done)
        return CellResult(done["exit_code"], entries[:end])

    def run(self, code: str, timeout: float = TIMEOUT) -> "CellResult":
        request_id, start = self.start_exec(code)
        return self.finish(request_id, start, timeout)

    def complete(self, code: str, cursor: int | None = None) -> list[str]:
        request_id = self.new_id()
        with self._cond:
            start = len(self.log)
        self.send({"op": "complete", "id": request_id, "code": code, "cursor": cursor})
        event = self.wait_event(
            lambda ev: ev.get("ev") == "completion" and ev.get("id") == request_id, start
        )
        return event["suggestions"]

    def interrupt(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    @staticmethod
    def stream(name: str, entries: list) -> bytes:
        return b"".join(p for k, p in entries if k == name)

    def close_commands(self) -> None:
        """Close the command channel (the child sees EOF on fd 4)."""
        if self._cmd >= 0:
            os.close(self._cmd)
            self._cmd = -1

    def close(self) -> None:
        self.close_commands()
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=3)
        finally:
            self._collector.join(timeout=3)
            os.close(self._ctrl)
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class CellResult:
    def __init__(self, exit_code: int, entries: list) -> None:
        self.exit_code = exit_code
        self.entries = entries
        self.stdout = ReplProcess.stream("stdout", entries)
        self.stderr = ReplProcess.stream("stderr", entries)
        self.events = [p for k, p in entries if k == "event"]
        # output positions ("o"/"e") are checked separately; compare media by content
        self.media = [
            {k: v for k, v in p.items() if k not in ("o", "e")} for p in self.events if p.get("ev") == "media"
        ]


@pytest.fixture
def repl() -> Iterator[ReplProcess]:
    process = ReplProcess()
    try:
        yield process
    finally:
        process.kill()
        process.close()


# --------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------


def test_frame_roundtrip_and_partial_feed() -> None:
    data = repl_module.pack_frame({"a": 1}) + repl_module.pack_frame({"b": "é"})
    decoder = repl_module.FrameDecoder()
    assert decoder.feed(data[:3]) == []
    assert decoder.feed(data[3:7]) == []
    assert decoder.feed(data[7:]) == [{"a": 1}, {"b": "é"}]
    bad = len(b"[1]").to_bytes(4, "big") + b"[1]"
    with pytest.raises(ValueError):
        decoder.feed(repl_module.pack_frame({"c": 3}) + bad)
    assert decoder.feed(b"") == [{"c": 3}]


# --------------------------------------------------------------------------
# REPL behaviour
# --------------------------------------------------------------------------


def test_ready_and_startup_state(repl: ReplProcess) -> None:
    assert repl.ready["pid"] == repl.proc.pid
    version = subprocess.check_output(
        [CHILD_PYTHON, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], text=True
    )
    assert repl.ready["python"] == version.strip()
    result = repl.run(
        "import sys, os\n"
        "print(__name__, sys.path[0] == '', repr(sys.argv))\n"
        "print(any(p.endswith('python_child') for p in sys.path))\n"
        "print(os.environ['MPLBACKEND'])\n"
        "print('Repl' in globals(), sys.modules['__main__'].__dict__ is globals())"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "__main__ True ['']",
        "False",
        "module://_krunner_inline",
        "False True",
    ]


def test_print_and_media_ordering(repl: ReplProcess) -> None:
    result = repl.run(
        "class H:\n"
        "    def _repr_html_(self): return '<b>hi</b>'\n"
        "print('before')\n"
        "display(H())\n"
        "print('after')\n"
    )
    assert result.exit_code == 0, result.stderr
    kinds = [(k, p) for k, p in result.entries]
    before = next(i for i, (k, p) in enumerate(kinds) if k == "stdout" and b"before" in p)
    media = next(i for i, (k, p) in enumerate(kinds) if k == "event" and p.get("ev") == "media")
    assert before < media
    assert result.media == [{"ev": "media", "type": "text/html", "data": "<b>hi</b>"}]
    assert result.stdout == b"before\nafter\n"


def test_output_streams_while_cell_runs(repl: ReplProcess) -> None:
    request_id, start = repl.start_exec("import time\nprint('tick')\ntime.sleep(0.5)\nprint('tock')")
    began = time.monotonic()
    repl.wait_output(b"tick", start, timeout=2)
    assert time.monotonic() - began < 0.4
    result = repl.finish(request_id, start)
    assert result.stdout == b"tick\ntock\n"


def test_last_expression_and_namespace(repl: ReplProcess) -> None:
    assert repl.run("x = 20\nx + 1").stdout == b"21\n"
    assert repl.run("x * 2").stdout == b"40\n"
    assert repl.run("None").stdout == b""
    assert repl.run("'s'").stdout == b"'s'\n"
    assert repl.run("_ + 'x'").stdout == b"'sx'\n"
    result = repl.run("def f():\n    return 5\nf()")
    assert result.stdout == b"5\n" and result.exit_code == 0


def test_rich_reprs(repl: ReplProcess) -> None:
    repl.run(
        "class Png:\n"
        "    def _repr_png_(self): return b'\\x89PNG'\n"
        "    def _repr_html_(self): return '<i>no</i>'\n"
        "class Bundle:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return ({'text/markdown': '# md', 'text/plain': 'B'}, {})\n"
        "class Unknown:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return {'application/javascript': 'x()', 'text/plain': 'plain text'}\n"
        "class Broken:\n"
        "    def _repr_html_(self): raise RuntimeError('boom')\n"
        "    def __repr__(self): return 'Broken!'\n"
        "class Json:\n"
        "    def _repr_json_(self): return {'k': [1, 2]}\n"
    )
    png = repl.run("Png()")
    assert png.media == [{"ev": "media", "type": "image/png", "data": "data:image/png;base64,iVBORw=="}]
    assert png.stdout == b""
    assert repl.run("Bundle()").media[0]["data"] == "# md"
    unknown = repl.run("Unknown()")
    assert unknown.media == [] and unknown.stdout == b"plain text\n"
    broken = repl.run("display(Broken(), 3)")
    assert broken.stdout == b"Broken!\n3\n" and broken.exit_code == 0
    assert repl.run("Json()").media[0] == {"ev": "media", "type": "application/json", "data": {"k": [1, 2]}}


def test_traceback_hides_repl_frames(repl: ReplProcess) -> None:
    result = repl.run("def boom():\n    raise ValueError('bad value')\nboom()")
    assert result.exit_code == 1
    text = result.stderr.decode()
    assert text.startswith("Traceback (most recent call last):\n  File \"<cell 1>\", line 3")
    assert "    boom()" in text and "raise ValueError('bad value')" in text
    assert "repl.py" not in text
    assert text.rstrip().endswith("ValueError: bad value")
    syntax = repl.run("x = (1,")
    assert syntax.exit_code == 1 and "SyntaxError" in syntax.stderr.decode()
    assert "repl.py" not in syntax.stderr.decode()
    assert repl.run("print('still alive')").stdout == b"still alive\n"


@pytest.mark.parametrize(
    ("code", "exit_code", "stderr"),
    [
        ("import sys; sys.exit()", 0, b""),
        ("import sys; sys.exit(3)", 3, b""),
        ("raise SystemExit('msg')", 1, b"msg\n"),
    ],
)
def test_system_exit(repl: ReplProcess, code: str, exit_code: int, stderr: bytes) -> None:
    result = repl.run(code)
    assert (result.exit_code, result.stderr) == (exit_code, stderr)
    assert repl.run("1").stdout == b"1\n"


def test_input_and_getpass_roundtrip(repl: ReplProcess) -> None:
    request_id, start = repl.start_exec(
        "import getpass, sys\n"
        "name = input('Name? ')\n"
        "secret = getpass.getpass()\n"
        "line = sys.stdin.readline()\n"
        "print(repr(name), repr(secret), repr(line))"
    )
    first = repl.wait_event(lambda ev: ev.get("ev") == "input_request", start)
    assert first["prompt"] == "Name? " and first["password"] is False
    repl.send({"op": "input", "id": first["id"], "text": "Ada\n"})
    second = repl.wait_event(lambda ev: ev.get("ev") == "input_request" and ev is not first, start)
    assert second["prompt"] == "Password: " and second["password"] is True
    assert second["id"] != first["id"]
    repl.send({"op": "input", "id": second["id"], "text": "s3cret"})
    third = repl.wait_event(
        lambda ev: ev.get("ev") == "input_request" and ev["id"] not in (first["id"], second["id"]), start
    )
    repl.send({"op": "input", "id": third["id"], "text": "line"})
    result = repl.finish(request_id, start)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == b"Name? Password: 'Ada' 's3cret' 'line\\n'\n"


def test_sigint_interrupts_sleep(repl: ReplProcess) -> None:
    request_id, start = repl.start_exec("import time\nprint('sleeping', flush=True)\ntime.sleep(30)")
    repl.wait_output(b"sleeping", start)
    began = time.monotonic()
    repl.interrupt()
    result = repl.finish(request_id, start, timeout=2)
    assert time.monotonic() - began < 2
    assert result.exit_code == 1
    text = result.stderr.decode()
    assert text.rstrip().endswith("KeyboardInterrupt") and "<cell 1>" in text
    assert "repl.py" not in text
    assert repl.run("40 + 2").stdout == b"42\n"


def test_sigint_while_idle_is_ignored(repl: ReplProcess) -> None:
    repl.interrupt()
    time.sleep(0.1)
    repl.interrupt()
    time.sleep(0.1)
    assert repl.proc.poll() is None
    result = repl.run("print('ok')")
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"ok\n", b"")


def test_sigint_aborts_pending_input(repl: ReplProcess) -> None:
    request_id, start = repl.start_exec("answer = input('q? ')")
    request = repl.wait_event(lambda ev: ev.get("ev") == "input_request", start)
    repl.interrupt()
    result = repl.finish(request_id, start, timeout=2)
    assert result.exit_code == 1
    assert result.stderr.decode().rstrip().endswith("KeyboardInterrupt")
    assert "repl.py" not in result.stderr.decode()
    repl.send({"op": "input", "id": request["id"], "text": "late"})  # dropped
    after = repl.run("print('answer' in globals())")
    assert after.stdout == b"False\n" and after.stderr == b""


def test_completion(repl: ReplProcess) -> None:
    repl.run("import os\nmy_dict = {'key1': 1, 'key2': 2, 'other': 3}\nmy_value = 1")
    assert "print(" in repl.complete("pri")
    assert repl.complete("my_") == ["my_dict", "my_value"]
    assert "os.path" in repl.complete("os.pa")
    assert "json" in repl.complete("import jso")
    assert "os.path" in repl.complete("import os.pa")
    assert "json.decoder" in repl.complete("import json.de")
    assert "email.mime" in repl.complete("from email.mi")
    assert "dumps" in repl.complete("from json import du")
    assert repl.complete('my_dict["ke') == ["key1", "key2"]
    assert repl.complete("my_dict['o") == ["other"]
    assert repl.complete("x = 1\nmy_d") == ["my_dict"]
    assert repl.complete("my_dict + 1", cursor=3) == ["my_dict", "my_value"]
    assert repl.complete("undefined_thing.x") == []


def test_completion_while_cell_runs(repl: ReplProcess) -> None:
    request_id, start = repl.start_exec("import time\nprint('s', flush=True)\ntime.sleep(30)")
    repl.wait_output(b"s", start)
    assert "print(" in repl.complete("pri")
    assert "time.sleep(" in repl.complete("time.sl")
    repl.interrupt()
    assert repl.finish(request_id, start, timeout=2).exit_code == 1


def test_large_single_print_is_byte_exact(repl: ReplProcess) -> None:
    result = repl.run('print("x" * 10_000_000)')
    assert result.exit_code == 0
    assert len(result.stdout) == 10_000_001
    assert result.stdout == b"x" * 10_000_000 + b"\n"


def test_many_lines_in_order(repl: ReplProcess) -> None:
    result = repl.run("for i in range(100000): print(i)")
    expected = "".join("%d\n" % i for i in range(100000)).encode()
    assert result.stdout == expected


def test_stderr_and_unicode(repl: ReplProcess) -> None:
    result = repl.run("import sys\nprint('héllo ✓')\nprint('err', file=sys.stderr)")
    assert result.stdout == "héllo ✓\n".encode() and result.stderr == b"err\n"


def test_top_level_await(repl: ReplProcess) -> None:
    result = repl.run("import asyncio\nawait asyncio.sleep(0.01)\nawait asyncio.sleep(0, result=7)")
    assert (result.exit_code, result.stdout) == (0, b"7\n"), result.stderr


def test_future_flags_and_stdin_read(repl: ReplProcess) -> None:
    assert repl.run("from __future__ import annotations").exit_code == 0
    result = repl.run("def f(x: undefined_name) -> None: pass\nf.__annotations__['x']")
    assert result.stdout == b"'undefined_name'\n", result.stderr
    request_id, start = repl.start_exec("import sys\ndata = sys.stdin.read()\nprint(repr(data))")
    request = repl.wait_event(lambda ev: ev.get("ev") == "input_request", start)
    assert request["prompt"] == "" and request["password"] is False
    repl.send({"op": "input", "id": request["id"], "text": "abc"})
    assert repl.finish(request_id, start).stdout == b"'abc\\n'\n"


FAKE_PYPLOT = """
import importlib, os
_figures = {}
class Figure:
    def __init__(self, num):
        self.num = num
    def savefig(self, buffer, format):
        assert format == "png"
        buffer.write(b"PNG%d" % self.num)
def figure(num=None):
    if num is None:
        num = max(_figures, default=0) + 1
    return _figures.setdefault(num, Figure(num))
def get_fignums():
    return sorted(_figures)
def close(which):
    _figures.clear()
def show():
    backend = os.environ["MPLBACKEND"][len("module://"):]
    importlib.import_module(backend).show()
"""


def test_inline_matplotlib_backend(short_tmp: Path) -> None:
    package = short_tmp / "matplotlib"
    (package / "backends").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "pyplot.py").write_text(FAKE_PYPLOT)
    (package / "backends" / "__init__.py").write_text("")
    (package / "backends" / "backend_agg.py").write_text("FigureCanvas = 'agg canvas'\n")
    repl = ReplProcess(cwd=str(short_tmp))
    try:
        assert "matplotlib" not in repl.run("import sys\nprint(sorted(sys.modules))").stdout.decode()
        result = repl.run(
            "import matplotlib.pyplot as plt\nplt.figure()\nplt.show()\nprint('shown')\nplt.figure()\n"
            "import _krunner_inline\nprint(_krunner_inline.FigureCanvas)"
        )
        assert result.exit_code == 0, result.stderr
        assert [m["data"] for m in result.media] == [
            "data:image/png;base64,UE5HMQ==",  # from plt.show()
            "data:image/png;base64,UE5HMQ==",  # still open after the cell
        ]
        assert result.stdout == b"shown\nagg canvas\n"
        assert repl.run("plt.get_fignums()").stdout == b"[]\n"
    finally:
        repl.kill()
        repl.close()


def test_eof_on_command_channel_exits(repl: ReplProcess) -> None:
    repl.close_commands()
    assert repl.proc.wait(timeout=3) == 0


# --------------------------------------------------------------------------
# batch sitecustomize
# --------------------------------------------------------------------------


def _batch_env(socket_path: str, *extra_paths: Path, batch_mode: str = "1") -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (BATCH_SITE, *extra_paths))
    env["_BACKEND_BATCH_MODE"] = batch_mode
    env["BACKENDAI_INPUT_SOCKET"] = socket_path
    return env


def _run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHILD_PYTHON, "-c", code],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
    )


class InputServer:
    """A one-shot AF_UNIX server answering each request with a fixed reply."""

    def __init__(self, path: str, answers: list[str]) -> None:
        self.requests: list[dict] = []
        self._answers = answers
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        self._sock.listen(4)
        self._sock.settimeout(TIMEOUT)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for answer in self._answers:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(TIMEOUT)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(json.loads(data))
                conn.sendall(answer.encode())

    def close(self) -> None:
        self._sock.close()
        self._thread.join(timeout=TIMEOUT)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="krt-") as path:
        yield Path(path)


def test_batch_input_over_socket(short_tmp: Path) -> None:
    sock_path = str(short_tmp / "in.sock")
    server = InputServer(sock_path, ["Alice\n", "pw"])
    try:
        code = "import getpass; print(input('Name? ')); print(getpass.getpass())"
        result = _run_python(code, _batch_env(sock_path))
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"Name? Alice\nPassword: pw\n"
    assert server.requests == [
        {"prompt": "Name? ", "password": False},
        {"prompt": "Password: ", "password": True},
    ]


def test_batch_input_without_server(short_tmp: Path) -> None:
    result = _run_python("input('x')", _batch_env(str(short_tmp / "missing.sock")))
    assert result.returncode == 1
    assert b"EOFError: user input is not available" in result.stderr


def test_batch_mode_disabled_keeps_builtin_input(short_tmp: Path) -> None:
    env = _batch_env(str(short_tmp / "missing.sock"), batch_mode="0")
    result = _run_python("import builtins; print(builtins.input.__module__)", env)
    assert result.stdout == b"builtins\n"


def test_batch_site_chains_image_sitecustomize(short_tmp: Path) -> None:
    other = short_tmp / "image_site"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import builtins\nbuiltins.IMAGE_SITE = 42\n")
    broken = short_tmp / "broken_site"
    broken.mkdir()
    (broken / "sitecustomize.py").write_text("raise RuntimeError('image site failed')\n")
    code = "import builtins; print(builtins.IMAGE_SITE, builtins.input.__module__ != 'builtins')"
    sock = str(short_tmp / "missing.sock")
    result = _run_python(code, _batch_env(sock, other))
    assert result.stdout == b"42 True\n", result.stderr
    result = _run_python(code.replace("print(builtins.IMAGE_SITE, ", "print("), _batch_env(sock, broken))
    assert result.returncode == 0 and result.stdout == b"True\n"
    assert b"image site failed" in result.stderr
    result = _run_python(code, _batch_env(sock, other, batch_mode="0"))
    assert result.stdout == b"42 False\n"


def test_events_carry_output_positions(repl):
    result = repl.run(
        "class H:\n    def _repr_html_(self): return '<i>x</i>'\n"
        "print('abc')\ndisplay(H())\nimport sys\nsys.stderr.write('zz')\ndisplay(H())"
    )
    positions = [(p["o"], p["e"]) for p in result.events if p.get("ev") == "media"]
    assert positions == [(4, 0), (4, 2)]
