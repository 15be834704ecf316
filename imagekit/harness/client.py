"""The agent's side of the REPL channel, for smoke tests and integration tests.

It speaks exactly what a Backend.AI agent speaks (PUSH to 2000, PULL from
2001, two-frame messages) using the shared definitions in
:mod:`krunner.protocol`, and routes replies by record type the way the agent
does.  Synchronous on purpose: tests and CLI checks read top to bottom.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import zmq

from krunner import protocol
from krunner.protocol import (
    AppsResult,
    CompletionPayload,
    ExitPayload,
    ModelServiceResult,
    Op,
    Record,
    ServiceResult,
    StatusPayload,
    decode_status,
    encode_json,
)

CONSOLE_RECORDS = frozenset(r.value for r in protocol.CONSOLE_RECORDS)
RUN_END_RECORDS = frozenset(r.value for r in protocol.RUN_END_RECORDS)


class ChannelTimeout(TimeoutError):
    pass


@dataclass
class RunResult:
    """Console output of one run, up to and including its terminal (or waiting-input) record."""

    records: list[tuple[str, bytes]] = field(default_factory=list)
    status: str = ""
    payload: bytes = b""

    @property
    def exit_code(self) -> int | None:
        if self.status == Record.WAITING_INPUT.value:
            return None
        return protocol.parse_exit(self.payload).exit_code

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.payload) if self.payload else {}

    def _joined(self, kind: str) -> bytes:
        return b"".join(p for t, p in self.records if t == kind)

    @property
    def stdout_bytes(self) -> bytes:
        return self._joined(Record.STDOUT.value)

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self._joined(Record.STDERR.value).decode("utf-8", errors="replace")

    @property
    def media(self) -> list[dict[str, Any]]:
        return [protocol.parse_media(p).model_dump() for t, p in self.records if t == Record.MEDIA.value]

    @property
    def types(self) -> list[str]:
        return [t for t, _ in self.records]


@dataclass
class BatchResult(RunResult):
    """A whole batch (clean, build, exec) read as one run."""

    #: exit code per step: ``{"clean": 0, "build": 0, "exec": 0}`` (steps that ran or were folded)
    steps: dict[str, int | None] = field(default_factory=dict)
    #: the intermediate markers the runner sent (none when it folds the batch)
    markers: list[str] = field(default_factory=list)


class AgentClient:
    def __init__(self, in_port: int, out_port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
        self.timeout = timeout
        #: every wait is multiplied by this (> 1 for a kernel under emulation, e.g. arm64 on x86_64)
        self.timeout_scale = 1.0
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.pull = self.ctx.socket(zmq.PULL)
        for sock in (self.push, self.pull):
            sock.setsockopt(zmq.LINGER, 50)
        self.pull.setsockopt(zmq.RCVHWM, 0)
        self.push.connect(f"tcp://{host}:{in_port}")
        self.pull.connect(f"tcp://{host}:{out_port}")
        self._stash: collections.deque[tuple[str, bytes]] = collections.deque()
        self.unexpected: list[tuple[str, bytes]] = []

    def close(self) -> None:
        self.push.close(0)
        self.pull.close(0)
        self.ctx.term()

    def __enter__(self) -> "AgentClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw I/O ------------------------------------------------------------------------------

    def send(self, op: Op | str, payload: bytes | str = b"") -> None:
        token = op.value if isinstance(op, Op) else op
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        self.push.send_multipart([token.encode("ascii"), data])

    def send_frames(self, frames: list[bytes]) -> None:
        self.push.send_multipart(frames)

    def _recv_socket(self, deadline: float) -> tuple[str, bytes]:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.pull.poll(int(remaining * 1000)):
            raise ChannelTimeout("no record from the runner in time")
        frames = self.pull.recv_multipart()
        if len(frames) != 2:
            raise AssertionError(f"runner sent a {len(frames)}-frame message: {frames!r}")
        return frames[0].decode("ascii"), frames[1]

    def recv(self, types: Iterable[str], timeout: float | None = None) -> tuple[str, bytes]:
        """The next record whose type is in ``types``; other records are stashed in order."""
        wanted = frozenset(types)
        for i, rec in enumerate(self._stash):
            if rec[0] in wanted:
                del self._stash[i]
                return rec
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout) * self.timeout_scale
        while True:
            rec = self._recv_socket(deadline)
            if rec[0] in wanted:
                return rec
            self._stash.append(rec)

    def drain_stash(self) -> list[tuple[str, bytes]]:
        items = list(self._stash)
        self._stash.clear()
        return items

    # -- runs -------------------------------------------------------------------------------

    def collect(self, until: Iterable[str] = RUN_END_RECORDS, timeout: float | None = None) -> RunResult:
        """Console records until a run-ending record, like the agent's get_next_result."""
        end = frozenset(until)
        result = RunResult()
        while True:
            kind, payload = self.recv(CONSOLE_RECORDS | end, timeout)
            if kind in end:
                result.status, result.payload = kind, payload
                return result
            result.records.append((kind, payload))

    def query(self, code: str, timeout: float | None = None) -> RunResult:
        self.send(Op.CODE, code)
        return self.collect(timeout=timeout)

    def feed_input(self, text: str, timeout: float | None = None) -> RunResult:
        self.send(Op.INPUT, text)
        return self.collect(timeout=timeout)

    def batch(self, clean: str = "", build: str = "", exec: str = "", timeout: float | None = None) -> BatchResult:
        """Send clean, build and exec at once (as the agent does) and collect the batch as one run.

        krunner folds the steps of such a batch into one run (``finished`` carries the folded
        steps' exit codes); a runner that sends ``clean-finished``/``build-finished`` instead is
        read the same way, its markers becoming :attr:`BatchResult.steps`.
        """
        self.send(Op.CLEAN, clean)
        self.send(Op.BUILD, build)
        self.send(Op.EXEC, exec)
        result = BatchResult()
        markers = {Record.CLEAN_FINISHED.value: "clean", Record.BUILD_FINISHED.value: "build"}
        while True:
            kind, payload = self.recv(CONSOLE_RECORDS | {Record.FINISHED.value, *markers}, timeout)
            if kind in markers:
                result.steps[markers[kind]] = protocol.parse_exit(payload).exit_code
                result.markers.append(kind)
            elif kind == Record.FINISHED.value:
                result.status, result.payload = kind, payload
                result.steps.update(ExitPayload.model_validate_json(payload).steps or {})
                result.steps["exec"] = result.exit_code
                return result
            else:
                result.records.append((kind, payload))

    # -- request/response -------------------------------------------------------------------

    def status(self, timeout: float | None = None) -> StatusPayload:
        self.send(Op.STATUS)
        _, payload = self.recv({Record.STATUS.value}, timeout)
        return decode_status(payload)

    def wait_ready(self, timeout: float = 60.0) -> StatusPayload:
        """Poll ``status`` the way the agent's readiness probe does."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.status(timeout=min(1.0, max(0.05, deadline - time.monotonic())))
            except ChannelTimeout:
                if time.monotonic() >= deadline:
                    raise

    def complete(self, code: str, cursor: int | None = None, timeout: float | None = None) -> CompletionPayload:
        body: dict[str, Any] = {"code": code}
        if cursor is not None:
            body["cursor"] = cursor
        self.send(Op.COMPLETE, encode_json(body))
        _, payload = self.recv({Record.COMPLETION.value}, timeout)
        return CompletionPayload.model_validate_json(payload)

    def get_apps(self, name: str = "", timeout: float | None = None) -> AppsResult:
        self.send(Op.GET_APPS, name)
        _, payload = self.recv({Record.APPS_RESULT.value}, timeout)
        return AppsResult.model_validate_json(payload)

    def start_service(self, request: dict[str, Any], timeout: float | None = None) -> ServiceResult:
        self.send(Op.START_SERVICE, encode_json(request))
        _, payload = self.recv({Record.SERVICE_RESULT.value}, timeout)
        return ServiceResult.model_validate_json(payload)

    def start_model_service(self, config: dict[str, Any], timeout: float | None = None) -> ModelServiceResult:
        self.send(Op.START_MODEL_SERVICE, encode_json(config))
        _, payload = self.recv({Record.MODEL_SERVICE_RESULT.value}, timeout)
        return ModelServiceResult.model_validate_json(payload)

    def interrupt(self) -> None:
        self.send(Op.INTERRUPT)


class PtyClient:
    """Viewer of the PTY channel: SUB on 2003 (screen), PUB to 2002 (keystrokes)."""

    def __init__(self, in_port: int, out_port: int, host: str = "127.0.0.1") -> None:
        self.ctx = zmq.Context()
        self.keys = self.ctx.socket(zmq.PUB)
        self.screen = self.ctx.socket(zmq.SUB)
        self.screen.setsockopt(zmq.SUBSCRIBE, b"")
        for sock in (self.keys, self.screen):
            sock.setsockopt(zmq.LINGER, 0)
        self.keys.connect(f"tcp://{host}:{in_port}")
        self.screen.connect(f"tcp://{host}:{out_port}")
        self.buffer = b""
        #: every wait is multiplied by this (> 1 for a kernel under emulation)
        self.timeout_scale = 1.0

    def type(self, data: bytes | str) -> None:
        self.keys.send(data.encode() if isinstance(data, str) else data)

    def read_until(self, needle: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout * self.timeout_scale
        while needle not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.screen.poll(int(remaining * 1000)):
                raise ChannelTimeout(f"{needle!r} not seen on the terminal; got {self.buffer[-300:]!r}")
            self.buffer += self.screen.recv()
        return self.buffer

    def close(self) -> None:
        self.keys.close(0)
        self.screen.close(0)
        self.ctx.term()
