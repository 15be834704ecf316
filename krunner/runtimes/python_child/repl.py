"""Query-mode REPL child for the krunner Python runtime.

This file runs inside the *user's* container image under the image's own
Python interpreter (CPython 3.8 or newer), so it only uses the standard
library and avoids syntax newer than Python 3.8.

File descriptors (set up by the parent runner):

* fd 0: /dev/null
* fd 1 / fd 2: the user's stdout / stderr (pipes read by the parent)
* fd 3: control channel, child -> parent (events)
* fd 4: command channel, parent -> child (commands)

Both channels carry frames made of a 4-byte big-endian length followed by a
UTF-8 encoded JSON object.  Importing this module has no side effects; the
program only starts under ``if __name__ == "__main__"``.
"""

from __future__ import annotations

import ast
import base64
import builtins
import io
import json
import keyword
import linecache
import os
import queue
import re
import signal
import struct
import sys
import threading
import time
import traceback
import types
from typing import Callable

CONTROL_FD = 3
COMMAND_FD = 4
OUTPUT_BUFFER_SIZE = 64 * 1024
FLUSH_INTERVAL = 0.01
MAX_FRAME_SIZE = 1 << 30
MAX_SUGGESTIONS = 200
MODULE_CACHE_TTL = 30.0
INLINE_BACKEND_MODULE = "_krunner_inline"
REPL_MODULE_NAME = "_krunner_repl"
CELL_PREFIX = "<cell "
_CO_COROUTINE = 0x0080
_TOP_LEVEL_AWAIT = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
_THIS_FILE = os.path.normcase(os.path.abspath(__file__))
_HEADER = struct.Struct(">I")


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------


def pack_frame(obj: dict) -> bytes:
    """Encode one message: 4-byte big-endian length + UTF-8 JSON object."""
    try:
        payload = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be encoded as UTF-8; fall back to \u escapes.
        payload = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder for length-prefixed JSON frames."""

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self._max_frame_size = max_frame_size
        self._carry: list = []

    def feed(self, data: bytes) -> list:
        """Add bytes and return every complete message decoded so far.

        A frame that is not a JSON object raises ValueError; the bad frame is
        consumed, and messages decoded before it in the same call are returned
        by the next call (e.g. ``feed(b"")``).
        """
        self._buffer.extend(data)
        messages, self._carry = self._carry, []
        while True:
            try:
                message = self._next_message()
            except ValueError:
                self._carry = messages
                raise
            if message is None:
                return messages
            messages.append(message)

    def _next_message(self):
        if len(self._buffer) < _HEADER.size:
            return None
        (length,) = _HEADER.unpack_from(self._buffer, 0)
        if length > self._max_frame_size:
            self._buffer.clear()
            raise ValueError("frame too large: %d bytes" % length)
        end = _HEADER.size + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[_HEADER.size:end])
        del self._buffer[:end]
        message = json.loads(payload.decode("utf-8"))
        if not isinstance(message, dict):
            raise ValueError("frame is not a JSON object")
        return message


# --------------------------------------------------------------------------
# Output streams and the control channel
# --------------------------------------------------------------------------


class _ByteCounter(object):
    """Bytes written to one output fd through sys.stdout/sys.stderr (survives stream repair)."""

    def __init__(self) -> None:
        self.count = 0


class _CountingRaw(io.RawIOBase):
    """A raw fd writer that counts bytes, so events can carry output positions.

    The runner uses the positions to put each event exactly after the output
    that preceded it, although output and events travel on different pipes.
    """

    def __init__(self, fd: int, counter: _ByteCounter) -> None:
        super().__init__()
        self._fd = fd
        self._counter = counter

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, data) -> int:  # type: ignore[override]
        written = os.write(self._fd, data)
        self._counter.count += written
        return written


def _make_text_stream(fd: int, errors: str, counter: "_ByteCounter | None" = None) -> io.TextIOWrapper:
    raw = _CountingRaw(fd, counter if counter is not None else _ByteCounter())
    buffered = io.BufferedWriter(raw, buffer_size=OUTPUT_BUFFER_SIZE)
    return io.TextIOWrapper(
        buffered, encoding="utf-8", errors=errors, line_buffering=False, write_through=False
    )


class OutputStreams:
    """The user's stdout/stderr as block-buffered text streams over fds 1/2."""

    def __init__(self) -> None:
        self.out_count = _ByteCounter()
        self.err_count = _ByteCounter()
        self.stdout = _make_text_stream(1, "surrogateescape", self.out_count)
        self.stderr = _make_text_stream(2, "backslashreplace", self.err_count)

    def positions(self) -> dict:
        """Bytes written so far to stdout ("o") and stderr ("e") through the streams."""
        return {"o": self.out_count.count, "e": self.err_count.count}

    def install(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            _quiet_flush(stream)
        sys.stdout = sys.__stdout__ = self.stdout
        sys.stderr = sys.__stderr__ = self.stderr

    def repair(self) -> None:
        """Recreate streams that user code closed."""
        if self.stdout.closed:
            self.stdout = _make_text_stream(1, "surrogateescape", self.out_count)
            sys.stdout = sys.__stdout__ = self.stdout
        if self.stderr.closed:
            self.stderr = _make_text_stream(2, "backslashreplace", self.err_count)
            sys.stderr = sys.__stderr__ = self.stderr

    def flush(self) -> None:
        _quiet_flush(self.stdout)
        _quiet_flush(self.stderr)


def _quiet_flush(stream: object) -> None:
    try:
        stream.flush()  # type: ignore[attr-defined]
    except Exception:
        pass


class Flusher:
    """Daemon thread flushing the output streams periodically while active."""

    def __init__(self, streams: OutputStreams, interval: float = FLUSH_INTERVAL) -> None:
        self._streams = streams
        self._interval = interval
        self._active = threading.Event()
        self._thread = threading.Thread(target=self._run, name="krunner-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def activate(self) -> None:
        self._active.set()

    def deactivate(self) -> None:
        self._active.clear()

    def _run(self) -> None:
        # Flush only when output stalled: while a cell prints a lot, the buffers
        # flush themselves whenever they fill, and flushing from this thread too
        # would only fight the main thread for the GIL and the buffer locks.
        last = None
        while True:
            self._active.wait()
            time.sleep(self._interval)
            if not self._active.is_set():
                continue
            now = self._streams.positions()
            if now == last:
                self._streams.flush()
                now = self._streams.positions()
            last = now


class InterruptGuard:
    """Decides what SIGINT does: raise KeyboardInterrupt only in user code.

    Outside user code (idle, REPL bookkeeping) SIGINT is ignored.  While the
    main thread writes a control frame, the interrupt is deferred until the
    frame is complete so the channel never carries a truncated frame.
    """

    def __init__(self) -> None:
        self.interruptible = False
        self._critical_depth = 0
        self._deferred = False

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: object) -> None:
        if not self.interruptible:
            return
        if self._critical_depth > 0:
            self._deferred = True
            return
        raise KeyboardInterrupt

    def user_code(self) -> "_UserCodeScope":
        return _UserCodeScope(self)

    def enter_critical(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        self._critical_depth += 1
        return True

    def leave_critical(self, entered: bool) -> None:
        if not entered:
            return
        self._critical_depth -= 1
        if self._critical_depth == 0 and self._deferred:
            self._deferred = False
            if self.interruptible:
                raise KeyboardInterrupt


class _UserCodeScope:
    def __init__(self, guard: InterruptGuard) -> None:
        self._guard = guard

    def __enter__(self) -> None:
        self._guard.interruptible = True

    def __exit__(self, *exc_info: object) -> bool:
        self._guard.interruptible = False
        return False


class ControlChannel:
    """Writes events to fd 3, flushing the user's output first."""

    def __init__(self, fd: int, streams: OutputStreams, guard: InterruptGuard) -> None:
        self._fd = fd
        self._streams = streams
        self._guard = guard
        self._lock = threading.Lock()
        self._broken = False

    def send(self, event: dict) -> None:
        entered = self._guard.enter_critical()
        try:
            self._streams.flush()
            with self._lock:
                frame = pack_frame(dict(event, **self._streams.positions()))
                self._write_all(frame)
        finally:
            self._guard.leave_critical(entered)

    def _write_all(self, data: bytes) -> None:
        if self._broken:
            return
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # The parent is gone; the command channel will report EOF soon.
            self._broken = True


# --------------------------------------------------------------------------
# input(), getpass() and stdin
# --------------------------------------------------------------------------


class _PendingInput:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.text = ""


class InputBroker:
    """Turns input()/getpass() calls into input_request events."""

    def __init__(self, channel: ControlChannel) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._pending: dict = {}
        self._next_id = 1

    def request(self, prompt: str, password: bool) -> str:
        _write_prompt(prompt)
        request_id, pending = self._register()
        try:
            self._channel.send(
                {"ev": "input_request", "id": request_id, "prompt": prompt, "password": password}
            )
            pending.event.wait()
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None
        finally:
            self._forget(request_id)
        text = pending.text
        return text[:-1] if text.endswith("\n") else text

    def deliver(self, request_id: object, text: object) -> bool:
        with self._lock:
            pending = self._pending.pop(request_id, None)
        if pending is None:
            return False
        pending.text = text if isinstance(text, str) else str(text)
        pending.event.set()
        return True

    def _register(self):
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            pending = _PendingInput()
            self._pending[request_id] = pending
        return request_id, pending

    def _forget(self, request_id: int) -> None:
        with self._lock:
            self._pending.pop(request_id, None)


def _write_prompt(prompt: str) -> None:
    stdout = sys.stdout
    if stdout is None:
        return
    stdout.flush()
    if prompt:
        stdout.write(prompt)
        stdout.flush()


class InputStdin(io.TextIOBase):
    """sys.stdin replacement: every line is requested from the client."""

    def __init__(self, broker: InputBroker) -> None:
        super().__init__()
        self._broker = broker
        self._pending = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def readline(self, size: int = -1) -> str:  # type: ignore[override]
        self._fill()
        end = self._pending.find("\n") + 1 or len(self._pending)
        if size is not None and 0 <= size < end:
            end = size
        return self._take(end)

    def read(self, size: int = -1) -> str:  # type: ignore[override]
        self._fill()
        if size is None or size < 0:
            return self._take(len(self._pending))
        return self._take(size)

    def _fill(self) -> None:
        if not self._pending:
            self._pending = self._broker.request("", False) + "\n"

    def _take(self, count: int) -> str:
        chunk, self._pending = self._pending[:count], self._pending[count:]
        return chunk


def install_input_hooks(broker: InputBroker) -> None:
    def krunner_input(prompt: object = "") -> str:
        return broker.request(str(prompt), False)

    def krunner_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        return broker.request(str(prompt), True)

    import getpass

    builtins.input = krunner_input
    getpass.getpass = krunner_getpass
    sys.stdin = InputStdin(broker)


# --------------------------------------------------------------------------
# Rich display
# --------------------------------------------------------------------------

MIME_PREFERENCE = (
    "image/png",
    "image/jpeg",
    "image/svg+xml",
    "text/html",
    "text/markdown",
    "text/latex",
    "application/json",
)
_REPR_METHODS = (
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("image/svg+xml", "_repr_svg_"),
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
)
_TEXT_MIMES = ("image/svg+xml", "text/html", "text/markdown", "text/latex")
_IMAGE_MIMES = ("image/png", "image/jpeg")


def _safe_getattr(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _call_repr(method: object, *args: object, **kwargs: object) -> object:
    if not callable(method):
        return None
    try:
        result = method(*args, **kwargs)
    except Exception:
        return None
    if isinstance(result, tuple) and len(result) == 2:
        result = result[0]  # (data, metadata)
    return result


def collect_mimebundle(obj: object) -> dict:
    """Gather every representation the object offers, keyed by MIME type."""
    bundle: dict = {}
    data = _call_repr(_safe_getattr(obj, "_repr_mimebundle_"), include=None, exclude=None)
    if isinstance(data, dict):
        bundle.update(data)
    for mime, method_name in _REPR_METHODS:
        if mime in bundle:
            continue
        value = _call_repr(_safe_getattr(obj, method_name))
        if value is not None:
            bundle[mime] = value
    return bundle


def _image_payload(mime: str, value: object):
    if isinstance(value, (bytes, bytearray, memoryview)):
        encoded = base64.b64encode(bytes(value)).decode("ascii")
    elif isinstance(value, str):
        encoded = "".join(value.split())
    else:
        return None
    return "data:%s;base64,%s" % (mime, encoded)


def _media_payload(mime: str, value: object):
    """Convert a bundle value to the event payload, or None if unusable."""
    if value is None:
        return None
    if mime in _IMAGE_MIMES:
        return _image_payload(mime, value)
    if mime in _TEXT_MIMES:
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value if isinstance(value, str) else None
    if mime == "application/json":
        if isinstance(value, (bytes, str)):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            return None
        return value
    return None


def select_rich_output(bundle: dict):
    """Pick the preferred supported (mime, payload) pair, or None."""
    for mime in MIME_PREFERENCE:
        payload = _media_payload(mime, bundle.get(mime))
        if payload is not None:
            return mime, payload
    return None


class Displayer:
    """Implements display() and the last-expression display."""

    def __init__(self, channel: ControlChannel) -> None:
        self._channel = channel

    def display(self, *objs: object) -> None:
        for obj in objs:
            self.show(obj)

    def show(self, obj: object) -> None:
        bundle = collect_mimebundle(obj)
        rich = select_rich_output(bundle)
        if rich is not None:
            mime, payload = rich
            self.emit(mime, payload)
            return
        text = bundle.get("text/plain")
        if not isinstance(text, str):
            text = repr(obj)
        stdout = sys.stdout
        if stdout is not None:
            stdout.write(text + "\n")

    def emit(self, mime: str, payload: object) -> None:
        self._channel.send({"ev": "media", "type": mime, "data": payload})


# --------------------------------------------------------------------------
# matplotlib inline backend (only used if the user imports matplotlib)
# --------------------------------------------------------------------------


class InlinePlots:
    """Emits open matplotlib figures as PNG media events.

    The inline backend is an in-memory module named ``_krunner_inline``.  A
    tiny meta-path finder creates it on demand, i.e. only when matplotlib
    itself loads the backend, so matplotlib is never imported by the REPL.
    """

    def __init__(self, displayer: Displayer) -> None:
        self._displayer = displayer

    def install_backend(self) -> None:
        sys.meta_path.append(_InlineBackendFinder(self))
        if "MPLBACKEND" in os.environ:
            return
        os.environ["MPLBACKEND"] = "module://" + INLINE_BACKEND_MODULE
        # The backend module only exists in this process: keep the variable
        # visible to matplotlib here (os.environ) but out of the C environment
        # inherited by subprocesses, which could not import the backend.
        if hasattr(os, "unsetenv"):
            os.unsetenv("MPLBACKEND")

    def populate_backend(self, module: types.ModuleType) -> None:
        """Fill the backend module: Agg's public API plus our show()."""
        from matplotlib.backends import backend_agg

        for name, value in vars(backend_agg).items():
            if not name.startswith("_"):
                module.__dict__[name] = value

        def show(*args: object, **kwargs: object) -> None:
            self.flush_figures()

        def draw_if_interactive(*args: object, **kwargs: object) -> None:
            return None

        def __getattr__(name: str) -> object:
            return getattr(backend_agg, name)

        module.__doc__ = "krunner inline matplotlib backend (Agg + PNG media events)."
        module.show = show  # type: ignore[attr-defined]
        module.draw_if_interactive = draw_if_interactive  # type: ignore[attr-defined]
        module.__getattr__ = __getattr__  # type: ignore[attr-defined]

    def flush_figures(self) -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        try:
            for number in list(pyplot.get_fignums()):
                self._emit_figure(pyplot.figure(number))
        finally:
            pyplot.close("all")

    def _emit_figure(self, figure: object) -> None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")  # type: ignore[attr-defined]
        self._displayer.emit("image/png", _image_payload("image/png", buffer.getvalue()))


class _InlineBackendFinder:
    """Meta-path finder/loader providing only the in-memory inline backend."""

    def __init__(self, plots: InlinePlots) -> None:
        self._plots = plots

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != INLINE_BACKEND_MODULE:
            return None
        import importlib.machinery

        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: object) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        self._plots.populate_backend(module)


# --------------------------------------------------------------------------
# Cell execution
# --------------------------------------------------------------------------


def _register_source(filename: str, source: str) -> None:
    lines = source.splitlines(True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    linecache.cache[filename] = (len(source), None, lines, filename)


def _future_flags(tree: ast.Module) -> int:
    import __future__

    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
    return flags


def _is_repl_frame(tb: types.TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    return os.path.normcase(os.path.abspath(filename)) == _THIS_FILE if filename else False


def trim_traceback(tb):
    """Drop the REPL's own frames; start at the first ``<cell N>`` frame."""
    start = tb
    while start is not None and not start.tb_frame.f_code.co_filename.startswith(CELL_PREFIX):
        start = start.tb_next
    if start is None:
        start = tb
    kept = []
    entry = start
    while entry is not None:
        if not _is_repl_frame(entry):
            kept.append(entry)
        entry = entry.tb_next
    if not kept:
        return None
    try:
        for current, following in zip(kept, kept[1:]):
            current.tb_next = following
        kept[-1].tb_next = None
    except (AttributeError, TypeError):  # tb_next is read-only before 3.7
        return start
    return kept[0]


def print_exception(exc: BaseException) -> None:
    stderr = sys.stderr or sys.__stderr__
    try:
        tb = trim_traceback(exc.__traceback__)
        lines = traceback.format_exception(type(exc), exc, tb)
        stderr.write("".join(lines))
    except Exception:
        stderr.write("%s: %s\n" % (type(exc).__name__, exc))


def _remember_last_exception(exc: BaseException) -> None:
    """Like the interactive interpreter, so that pdb.pm() works."""
    sys.last_type = type(exc)
    sys.last_value = exc
    sys.last_traceback = exc.__traceback__
    if sys.version_info >= (3, 12):
        sys.last_exc = exc  # type: ignore[attr-defined]


def print_syntax_error(exc: BaseException) -> None:
    stderr = sys.stderr or sys.__stderr__
    stderr.write("".join(traceback.format_exception_only(type(exc), exc)))


def system_exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)
    stderr = sys.stderr or sys.__stderr__
    try:
        stderr.write("%s\n" % (code,))
    except Exception:
        pass
    return 1


class CellExecutor:
    """Compiles and runs cells in one persistent namespace."""

    def __init__(self, namespace: dict, displayer: Displayer, guard: InterruptGuard) -> None:
        self._namespace = namespace
        self._displayer = displayer
        self._guard = guard
        self._cell_count = 0
        self._flags = 0
        self._loop = None

    def run(self, source: str) -> int:
        self._cell_count += 1
        filename = "<cell %d>" % self._cell_count
        _register_source(filename, source)
        try:
            body, last_expr = self._compile(source, filename)
        except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
            print_syntax_error(exc)
            return 1
        try:
            with self._guard.user_code():
                self._run_code(body)
                if last_expr is not None:
                    self._show_result(self._run_code(last_expr))
        except SystemExit as exc:
            return system_exit_code(exc)
        except BaseException as exc:
            _remember_last_exception(exc)
            print_exception(exc)
            return 1
        return 0

    def _compile(self, source: str, filename: str):
        base_flags = self._flags | _TOP_LEVEL_AWAIT
        tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST | base_flags, dont_inherit=True)
        self._flags |= _future_flags(tree)
        flags = self._flags | _TOP_LEVEL_AWAIT
        statements = tree.body
        last_expr = None
        if statements and isinstance(statements[-1], ast.Expr):
            last_expr = ast.Expression(body=statements[-1].value)
            statements = statements[:-1]
        module = ast.Module(body=statements, type_ignores=[])
        body = compile(module, filename, "exec", flags, dont_inherit=True)
        expr = None
        if last_expr is not None:
            expr = compile(last_expr, filename, "eval", flags, dont_inherit=True)
        return body, expr

    def _run_code(self, code: types.CodeType) -> object:
        if code.co_flags & _CO_COROUTINE:
            return self._run_coroutine(eval(code, self._namespace))
        return eval(code, self._namespace)

    def _run_coroutine(self, coroutine: object) -> object:
        import asyncio

        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        loop = self._loop
        task = loop.create_task(coroutine)  # type: ignore[arg-type]
        try:
            return loop.run_until_complete(task)
        except BaseException:
            if not task.done():
                task.cancel()
                try:
                    loop.run_until_complete(task)
                except BaseException:
                    pass
            raise

    def _show_result(self, value: object) -> None:
        if value is None:
            return
        builtins._ = value  # type: ignore[attr-defined]
        self._displayer.show(value)


# --------------------------------------------------------------------------
# Completion
# --------------------------------------------------------------------------

_IMPORT_RE = re.compile(r"^\s*import\s+(?:[\w.]+(?:\s+as\s+\w+)?\s*,\s*)*([\w.]*)$")
_FROM_RE = re.compile(r"^\s*from\s+([\w.]*)$")
_FROM_IMPORT_RE = re.compile(
    r"^\s*from\s+([\w.]+)\s+import\s+\(?\s*(?:\w+(?:\s+as\s+\w+)?\s*,\s*)*(\w*)$"
)
_KEY_RE = re.compile(r"""([A-Za-z_][\w.]*)\s*\[\s*(['"])([^'"\\]*)$""")
_TOKEN_RE = re.compile(r"[\w.]*$")
_ATTR_RE = re.compile(r"^(\w+(?:\.\w+)*)\.(\w*)$")
_NO_SPACE_KEYWORDS = {"False", "None", "True", "break", "continue", "pass", "else", "_"}


class ModuleIndex:
    """Module names for import completion, cached for a short while."""

    def __init__(self, ttl: float = MODULE_CACHE_TTL) -> None:
        self._ttl = ttl
        self._names: list = []
        self._stamp = -1.0e9
        self._lock = threading.Lock()

    def top_level(self) -> list:
        with self._lock:
            if time.monotonic() - self._stamp > self._ttl:
                self._names = self._scan()
                self._stamp = time.monotonic()
            return self._names

    @staticmethod
    def _scan() -> list:
        import pkgutil

        names = set(sys.builtin_module_names)
        names.update(name for name in list(sys.modules) if "." not in name)
        for info in pkgutil.iter_modules():
            names.add(info.name)
        return sorted(name for name in names if name.isidentifier())

    def submodules(self, package: str) -> list:
        paths = _package_paths(package)
        if not paths:
            return []
        import pkgutil

        return sorted(info.name for info in pkgutil.iter_modules(paths))


def _package_paths(package: str) -> list:
    """Search locations of a package, without importing it if possible."""
    module = sys.modules.get(package)
    if module is not None:
        return list(getattr(module, "__path__", None) or [])
    import importlib.machinery
    import importlib.util

    parts = package.split(".")
    paths = None
    for index in range(len(parts)):
        fullname = ".".join(parts[: index + 1])
        if index == 0:
            spec = importlib.util.find_spec(fullname)
        else:
            spec = importlib.machinery.PathFinder.find_spec(fullname, paths)
        if spec is None or not spec.submodule_search_locations:
            return []
        paths = list(spec.submodule_search_locations)
    return paths or []


def _loaded_submodules(package: str) -> list:
    """Names of already imported modules directly below ``package``."""
    prefix = package + "."
    tails = [name[len(prefix):] for name in list(sys.modules) if name.startswith(prefix)]
    return [tail for tail in tails if tail and "." not in tail]


def _callable_suffix(value: object, word: str) -> str:
    try:
        return word + "(" if callable(value) else word
    except Exception:
        return word


class Completer:
    """Completion against the user namespace (safe to call from any thread)."""

    def __init__(self, namespace: dict, modules: ModuleIndex) -> None:
        self._namespace = namespace
        self._modules = modules

    def complete(self, code: str, cursor: object) -> list:
        if isinstance(cursor, int) and not isinstance(cursor, bool):
            code = code[: max(0, cursor)]
        line = code.split("\n")[-1]
        matches = self._match_line(line)
        return sorted(set(matches))[:MAX_SUGGESTIONS]

    def _match_line(self, line: str) -> list:
        match = _FROM_IMPORT_RE.match(line)
        if match:
            return self._from_import_matches(match.group(1), match.group(2))
        match = _IMPORT_RE.match(line) or _FROM_RE.match(line)
        if match:
            return self._module_matches(match.group(1))
        match = _KEY_RE.search(line)
        if match:
            return self._key_matches(match.group(1), match.group(3))
        token = _TOKEN_RE.search(line).group()
        if not token or token[0].isdigit():
            return []
        if "." in token:
            return self._attr_matches(token)
        return self._global_matches(token)

    def _module_matches(self, prefix: str) -> list:
        package, dot, stem = prefix.rpartition(".")
        if not dot:
            return [name for name in self._modules.top_level() if name.startswith(stem)]
        if not package or package.startswith("."):
            return []
        names = set(self._modules.submodules(package))
        names.update(_loaded_submodules(package))
        return [package + "." + name for name in names if name.startswith(stem)]

    def _from_import_matches(self, module_name: str, prefix: str) -> list:
        if module_name.startswith("."):
            return []
        names = set(self._modules.submodules(module_name))
        names.update(_loaded_submodules(module_name))
        module = sys.modules.get(module_name)
        if module is not None:
            names.update(dir(module))
        hide_private = not prefix.startswith("_")
        return [
            name
            for name in names
            if name.startswith(prefix) and not (hide_private and name.startswith("_"))
        ]

    def _lookup(self, dotted: str) -> object:
        parts = dotted.split(".")
        namespace = self._namespace
        if parts[0] in namespace:
            obj = namespace[parts[0]]
        elif hasattr(builtins, parts[0]):
            obj = getattr(builtins, parts[0])
        else:
            raise LookupError(parts[0])
        for part in parts[1:]:
            obj = _static_attr(obj, part)
        return obj

    def _key_matches(self, expr: str, prefix: str) -> list:
        try:
            obj = self._lookup(expr)
        except Exception:
            return []
        import collections.abc

        if not isinstance(obj, collections.abc.Mapping):
            return []
        matches = []
        for index, key in enumerate(list(obj.keys())):
            if index >= 100000:
                break
            if isinstance(key, str) and key.startswith(prefix):
                matches.append(key)
        return matches

    def _global_matches(self, text: str) -> list:
        matches = []
        seen = set()
        for word in keyword.kwlist + list(getattr(keyword, "softkwlist", [])):
            if word.startswith(text):
                seen.add(word)
                if word in ("finally", "try"):
                    word += ":"
                elif word not in _NO_SPACE_KEYWORDS:
                    word += " "
                matches.append(word)
        for space in (dict(self._namespace), dict(vars(builtins))):
            for word, value in space.items():
                if word.startswith(text) and word not in seen and word.isidentifier():
                    seen.add(word)
                    matches.append(_callable_suffix(value, word))
        return matches

    def _attr_matches(self, token: str) -> list:
        match = _ATTR_RE.match(token)
        if not match:
            return []
        expr, attr = match.group(1), match.group(2)
        try:
            obj = self._lookup(expr)
        except Exception:
            return []
        words = set(_safe_dir(obj))
        words.discard("__builtins__")
        if hasattr(obj, "__class__"):
            words.add("__class__")
            words.update(_class_members(type(obj)))
        if attr == "":
            hidden = "_"
        elif attr == "_":
            hidden = "__"
        else:
            hidden = None
        matches = []
        for word in words:
            if not word.startswith(attr) or (hidden and word.startswith(hidden)):
                continue
            matches.append(expr + "." + self._attr_word(obj, word))
        return matches

    @staticmethod
    def _attr_word(obj: object, word: str) -> str:
        if isinstance(_safe_getattr(type(obj), word), property):
            return word
        try:
            value = _static_attr(obj, word)
        except Exception:
            return word
        return _callable_suffix(value, word)


def _static_attr(obj: object, name: str) -> object:
    """getattr() that refuses to run properties."""
    if isinstance(_safe_getattr(type(obj), name), property):
        raise LookupError(name)
    return getattr(obj, name)


def _safe_dir(obj: object) -> list:
    try:
        return [name for name in dir(obj) if isinstance(name, str)]
    except Exception:
        return []


def _class_members(cls: type) -> list:
    names = []
    for klass in getattr(cls, "__mro__", ()):
        names.extend(_safe_dir(klass))
    return names


# --------------------------------------------------------------------------
# The REPL process
# --------------------------------------------------------------------------

_EOF = object()


def _block_sigint() -> object:
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _restore_sigmask(previous: object) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # type: ignore[arg-type]


def create_user_namespace() -> dict:
    """Install a fresh ``__main__`` module and return its namespace."""
    current = sys.modules.get("__main__")
    if current is not None and current.__dict__ is globals():
        sys.modules[REPL_MODULE_NAME] = current
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    return module.__dict__


def normalize_sys_path() -> None:
    """Make sys.path look like an interactive session's (cwd first)."""
    here = os.path.normcase(os.path.realpath(os.path.dirname(_THIS_FILE)))
    kept = []
    for entry in sys.path:
        if entry and os.path.normcase(os.path.realpath(entry)) == here:
            continue
        kept.append(entry)
    if not kept or kept[0] != "":
        kept.insert(0, "")
    sys.path[:] = kept
    sys.argv[:] = [""]


class Repl:
    """Wires the channels, threads and executor together."""

    def __init__(self) -> None:
        self.guard = InterruptGuard()
        self.streams = OutputStreams()
        self.channel = ControlChannel(CONTROL_FD, self.streams, self.guard)
        self.flusher = Flusher(self.streams)
        self.inputs = InputBroker(self.channel)
        self.displayer = Displayer(self.channel)
        self.plots = InlinePlots(self.displayer)
        self.namespace: dict = {}
        self.executor: CellExecutor
        self.completer: Completer
        self._commands: queue.Queue = queue.Queue()
        self._busy = False

    def setup(self) -> None:
        self.guard.install()
        self.streams.install()
        normalize_sys_path()
        self.namespace = create_user_namespace()
        self.executor = CellExecutor(self.namespace, self.displayer, self.guard)
        self.completer = Completer(self.namespace, ModuleIndex())
        install_input_hooks(self.inputs)
        builtins.display = self.displayer.display  # type: ignore[attr-defined]
        self.plots.install_backend()
        self._start_thread(self.flusher.start)

    def _start_thread(self, start: Callable[[], None]) -> None:
        previous = _block_sigint()  # the new thread inherits the blocked mask
        try:
            start()
        finally:
            _restore_sigmask(previous)

    def _start_reader(self) -> None:
        reader = threading.Thread(target=self._read_commands, name="krunner-reader")
        reader.daemon = True
        reader.start()

    def run(self) -> int:
        version = "%d.%d.%d" % sys.version_info[:3]
        self.channel.send({"ev": "ready", "python": version, "pid": os.getpid()})
        self._start_thread(self._start_reader)
        while True:
            command = self._commands.get()
            if command is _EOF:
                break
            self._handle_exec(command)
        self.streams.flush()
        return 0

    # -- main thread --------------------------------------------------------

    def _handle_exec(self, command: dict) -> None:
        exit_code = 1
        self._busy = True
        self.streams.repair()
        self.flusher.activate()
        try:
            exit_code = self._execute(command.get("code"))
        except BaseException as exc:  # internal error; keep the REPL alive
            self._report_internal_error(exc)
        finally:
            self.guard.interruptible = False
            self.flusher.deactivate()
            self._busy = False
        self._send_done(command.get("id"), exit_code)

    def _execute(self, code: object) -> int:
        if not isinstance(code, str):
            sys.stderr.write("krunner: exec command without a code string\n")
            return 1
        exit_code = self.executor.run(code)
        try:
            with self.guard.user_code():
                self.plots.flush_figures()
        except BaseException as exc:
            print_exception(exc)
            exit_code = exit_code or 1
        return exit_code

    def _send_done(self, request_id: object, exit_code: int) -> None:
        try:
            self.channel.send({"ev": "done", "id": request_id, "exit_code": exit_code})
        except BaseException as exc:
            self._report_internal_error(exc)

    @staticmethod
    def _report_internal_error(exc: BaseException) -> None:
        try:
            stderr = sys.__stderr__ or sys.stderr
            stderr.write("krunner REPL internal error: %r\n" % (exc,))
        except BaseException:
            pass

    # -- reader thread --------------------------------------------------------

    def _read_commands(self) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                data = os.read(COMMAND_FD, 1 << 16)
            except OSError:
                data = b""
            if not data:
                self._on_eof()
                return
            for command in self._decode(decoder, data):
                try:
                    self._dispatch(command)
                except Exception as exc:
                    self._report_internal_error(exc)

    def _decode(self, decoder: FrameDecoder, data: bytes) -> list:
        commands = []
        while True:
            try:
                commands.extend(decoder.feed(data))
                return commands
            except ValueError as exc:
                self._report_internal_error(exc)
                data = b""

    def _dispatch(self, command: dict) -> None:
        op = command.get("op")
        if op == "exec":
            self._commands.put(command)
        elif op == "complete":
            self._answer_completion(command)
        elif op == "input":
            self.inputs.deliver(command.get("id"), command.get("text", ""))
        else:
            self._report_internal_error(ValueError("unknown command op %r" % (op,)))

    def _answer_completion(self, command: dict) -> None:
        try:
            code = command.get("code")
            code = code if isinstance(code, str) else ""
            suggestions = self.completer.complete(code, command.get("cursor"))
        except Exception:
            suggestions = []
        self.channel.send({"ev": "completion", "id": command.get("id"), "suggestions": suggestions})

    def _on_eof(self) -> None:
        if self._busy:
            # The parent is gone while a cell runs: leave immediately.
            os._exit(0)
        self._commands.put(_EOF)


def main() -> None:
    repl = Repl()
    repl.setup()
    sys.exit(repl.run())


if __name__ == "__main__":
    main()
