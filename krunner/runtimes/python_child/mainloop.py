"""The REPL process: wires channels, threads and executor; the main thread runs cells,
a reader thread takes commands from fd 4 (completion and input are answered at once)."""

from __future__ import annotations

import builtins
import os
import queue
import sys
import threading
import types
from typing import Callable

from . import CHILD_DIR
from .channel import ControlChannel
from .completion import Completer, ModuleIndex
from .display import Displayer
from .executor import CellExecutor, print_exception
from .framing import COMMAND_FD, CONTROL_FD, FrameDecoder
from .inline_plots import InlinePlots
from .interrupts import InterruptGuard, block_sigint, restore_sigmask
from .memory import LARGE_SOURCE, give_back_free_memory
from .streams import Flusher, OutputStreams
from .user_input import ChildInputBroker, install_input_hooks

REPL_MODULE_NAME = "_krunner_repl"
_EOF = object()


def _is_child_file(path: object) -> bool:
    if not isinstance(path, str) or not path:
        return False
    return os.path.normcase(os.path.dirname(os.path.abspath(path))) == CHILD_DIR


def create_user_namespace() -> dict:
    """Install a fresh ``__main__`` module and return its namespace."""
    current = sys.modules.get("__main__")
    if current is not None and _is_child_file(getattr(current, "__file__", None)):
        sys.modules[REPL_MODULE_NAME] = current  # the entry script (repl.py) stays importable
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    return module.__dict__


def normalize_sys_path() -> None:
    """Make sys.path look like an interactive session's (cwd first)."""
    here = os.path.normcase(os.path.realpath(CHILD_DIR))
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
        self.inputs = ChildInputBroker(self.channel)
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
        previous = block_sigint()  # the new thread inherits the blocked mask
        try:
            start()
        finally:
            restore_sigmask(previous)

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
            code = command.get("code")
            large = isinstance(code, str) and len(code) >= LARGE_SOURCE
            self._handle_exec(command)
            if large:
                del command, code
                give_back_free_memory()
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
