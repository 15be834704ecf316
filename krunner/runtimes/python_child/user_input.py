"""input(), getpass() and sys.stdin in the REPL child: each becomes an ``input_request`` event."""

from __future__ import annotations

import builtins
import io
import sys
import threading

from .channel import ControlChannel


class _PendingInput:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.text = ""


class ChildInputBroker:
    """The REPL child's side: turns input()/getpass() calls into ``input_request`` events to the
    runner (whose side is ``krunner.user_input.RunnerInputBroker``)."""

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

    def __init__(self, broker: ChildInputBroker) -> None:
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


def install_input_hooks(broker: ChildInputBroker) -> None:
    def krunner_input(prompt: object = "") -> str:
        return broker.request(str(prompt), False)

    def krunner_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        return broker.request(str(prompt), True)

    import getpass

    builtins.input = krunner_input
    getpass.getpass = krunner_getpass
    sys.stdin = InputStdin(broker)
