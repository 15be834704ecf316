"""Query mode for Python: a persistent REPL process in the image's own interpreter.

The child (``python_child/``, stdlib only, started as ``python_child/repl.py``)
writes the user's output to fds 1/2 and control events to fd 3, and reads
commands from fd 4 (see ``python_child/framing.py``).  Before handling any
control event the runner drains the output pipes, so output and events reach
the agent in the order the program produced them.  If the child dies (OOM,
``os._exit``) the running cell finishes with the death's exit code and a fresh
REPL is started on the next query.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import signal
from pathlib import Path
from typing import Any

from ..proc import ChildProcess
from ..protocol import EXIT_NOTHING_TO_RUN, Record, media_payload
from ..user_input import InputCancelled
from .base import QueryEngineBase
from .python_child.framing import FrameDecoder, pack_frame

log = logging.getLogger("krunner.python")

CHILD_DIR = Path(__file__).parent / "python_child"
REPL_SCRIPT = CHILD_DIR / "repl.py"
READY_TIMEOUT = 20.0
COMPLETE_TIMEOUT = 3.0


#: characters of the cursor's line sent to the REPL's completer (the completer reads only that line)
COMPLETE_CONTEXT = 4096


def completion_context(code: str, cursor: int | None) -> str:
    """The text the completer uses: the cursor's line up to the cursor, at most its last
    :data:`COMPLETE_CONTEXT` characters. A 10 MB ``complete`` payload (one line of ``[``) once kept
    the REPL's command reader busy in the completer's regular expressions for minutes, and the
    query behind it waited on the command pipe (issue 15, found by the fuzzer)."""
    if cursor is not None:
        code = code[: max(0, cursor)]
    return code[code.rfind("\n") + 1:][-COMPLETE_CONTEXT:]


class ReplDied(Exception):
    pass


class PythonRepl(QueryEngineBase):
    keeps_state = True

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._child: ChildProcess | None = None
        self._ctl_fd: int | None = None
        self._cmd_fd: int | None = None
        self._decoder = FrameDecoder()
        self._ids = itertools.count(1)
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._done: dict[int, asyncio.Future[int]] = {}
        self._completions: dict[int, asyncio.Future[list[str]]] = {}
        self._input_tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._busy = False
        # one frame at a time on the command pipe: a large `exec` frame is written in pieces while
        # the pipe drains, and a `complete` or `input` frame written in between would corrupt both
        self._send_lock = asyncio.Lock()
        self._reset_streams()

    # -- ordering of output and events --------------------------------------------------------
    #
    # Output (fds 1/2) and events (fd 3) travel on different pipes, so the loop may
    # see output that was written *after* an event before the event itself.  Each
    # event carries the number of bytes the child had written to stdout ("o") and
    # stderr ("e") when it was sent; output is held back just long enough to be
    # split at those positions.  "done" (and events without positions) release
    # everything that was written before them.

    def _reset_streams(self) -> None:
        self._held: dict[str, bytearray] = {"o": bytearray(), "e": bytearray()}
        self._forwarded: dict[str, int] = {"o": 0, "e": 0}
        self._events: collections.deque[dict[str, Any]] = collections.deque()
        self._pumping = False

    def _on_output(self, stream: str, data: bytes) -> None:
        if self._pumping:
            self._held[stream] += data
            return
        self._read_control()
        if not self._events and not self._held[stream]:  # the common case: no event to order against
            self._forwarded[stream] += len(data)
            self.ctx.outbox.send(Record.STDOUT if stream == "o" else Record.STDERR, data)
            return
        self._held[stream] += data
        self._pump()

    def _forward(self, stream: str, upto: int | None = None) -> None:
        held = self._held[stream]
        if not held:
            return
        count = len(held) if upto is None else max(0, min(len(held), upto - self._forwarded[stream]))
        if count == 0:
            return
        chunk = bytes(held[:count])
        del held[:count]
        self._forwarded[stream] += count
        self.ctx.outbox.send(Record.STDOUT if stream == "o" else Record.STDERR, chunk)

    def _pump(self) -> None:
        self._pumping = True
        try:
            if self._events and self._child is not None:
                self._child.drain()  # everything written before the queued events is now held
            while self._events:
                event = self._events.popleft()
                for stream in ("o", "e"):
                    pos = event.get(stream)
                    last = event.get("ev") == "done" or not isinstance(pos, int)
                    self._forward(stream, None if last else pos)
                try:
                    self._handle_event(event)
                except Exception:
                    log.exception("failed to handle REPL event %r", event.get("ev"))
            self._forward("o")
            self._forward("e")
        finally:
            self._pumping = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.returncode is None

    @property
    def streams_lost(self) -> bool:
        """The REPL closed its stdout or stderr (e.g. user code ran ``os.close(1)``): it still runs,
        but nothing it prints would reach the agent any more."""
        return self._child is not None and any(pump.closed for pump in self._child.pumps)

    async def start(self) -> None:
        await self._spawn()

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        ctl_r, ctl_w = os.pipe()
        cmd_r, cmd_w = os.pipe()
        self._reset_streams()
        try:
            child = ChildProcess.spawn(
                [self.ctx.runtime_path, str(REPL_SCRIPT)],
                env=self.ctx.env,
                cwd=self.ctx.cwd,
                stdout_sink=lambda data: self._on_output("o", data),
                stderr_sink=lambda data: self._on_output("e", data),
                extra_fds={3: ctl_w, 4: cmd_r},
                gate=self.ctx.outbox.gate,  # output pauses, fd 3 (events, completions) never does
            )
        except BaseException:
            for fd in (ctl_r, cmd_w):
                os.close(fd)
            raise
        finally:
            os.close(ctl_w)
            os.close(cmd_r)
        self._child = child
        self._ctl_fd, self._cmd_fd = ctl_r, cmd_w
        self._decoder = FrameDecoder()
        os.set_blocking(ctl_r, False)
        os.set_blocking(cmd_w, False)
        self._ready = loop.create_future()
        loop.add_reader(ctl_r, self._on_control)
        self._watch = loop.create_task(self._watch_child(child))
        try:
            info = await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT)
        except (asyncio.TimeoutError, ReplDied) as exc:
            await self._teardown(kill=True)
            raise ReplDied(f"the Python REPL did not start ({exc or 'timeout'})") from None
        log.info("python REPL ready: python %s, pid %s", info.get("python"), info.get("pid"))

    async def _watch_child(self, child: ChildProcess) -> None:
        code = await child.wait_exit()
        if child is not self._child:
            return
        self._read_control()
        child.drain()
        self._pump()
        self._close_control()
        err = ReplDied(f"exit status {code}")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(err)
        for fut in self._done.values():
            if not fut.done():
                fut.set_result(code)
        for cfut in self._completions.values():
            if not cfut.done():
                cfut.set_result([])
        if self._busy:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            self.ctx.outbox.send(
                Record.STDERR,
                f"\n[krunner] the Python process {how}; its variables are lost. "
                "A fresh interpreter starts with the next query.\n".encode(),
            )

    def _close_control(self) -> None:
        if self._ctl_fd is not None:
            asyncio.get_running_loop().remove_reader(self._ctl_fd)
            os.close(self._ctl_fd)
            self._ctl_fd = None
        if self._cmd_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._cmd_fd)
            self._cmd_fd = None

    async def _teardown(self, kill: bool) -> None:
        child = self._child
        self._close_control()
        if child is not None and child.returncode is None:
            if kill:
                child.kill_now()
            else:
                await child.terminate(signal.SIGTERM, grace=1.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(child.wait(output_grace=0.2), 3.0)
        if self._watch is not None:
            self._watch.cancel()
        self._child = None

    async def shutdown(self) -> None:
        await self._teardown(kill=False)

    # -- control channel ---------------------------------------------------------------------

    def _read_control(self) -> bool:
        """Read and decode whatever events are waiting on fd 3; False on EOF."""
        fd = self._ctl_fd
        if fd is None:
            return False
        while True:
            try:
                data = os.read(fd, 1 << 20)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                self._close_control()
                return False
            try:
                self._events.extend(self._decoder.feed(data))
            except ValueError as exc:
                log.error("bad control frame from the Python REPL: %s", exc)

    def _on_control(self) -> None:
        self._read_control()
        if not self._pumping:
            self._pump()

    def _handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("ev")
        if kind == "media":
            self.ctx.outbox.send(Record.MEDIA, media_payload(str(event.get("type", "text/plain")), event.get("data")))
        elif kind == "done":
            fut = self._done.get(int(event["id"]))
            if fut is not None and not fut.done():
                fut.set_result(int(event.get("exit_code", 0)))
        elif kind == "completion":
            cfut = self._completions.get(int(event["id"]))
            if cfut is not None and not cfut.done():
                cfut.set_result([str(s) for s in event.get("suggestions", [])])
        elif kind == "input_request":
            task = asyncio.get_running_loop().create_task(
                self._answer_input(int(event["id"]), bool(event.get("password")))
            )
            self._input_tasks.add(task)
            task.add_done_callback(self._input_tasks.discard)
        elif kind == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(event)
        else:
            log.warning("unknown REPL event %r", kind)

    async def _send(self, command: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._write_frame(memoryview(pack_frame(command)))

    async def _write_frame(self, data: memoryview) -> None:
        loop = asyncio.get_running_loop()
        while data:
            fd = self._cmd_fd
            if fd is None:
                raise ReplDied("the Python REPL is gone")
            try:
                written = os.write(fd, data)
                data = data[written:]
            except BlockingIOError:
                writable = loop.create_future()
                loop.add_writer(fd, writable.set_result, None)
                try:
                    await writable
                finally:
                    loop.remove_writer(fd)
            except (BrokenPipeError, OSError) as exc:
                raise ReplDied(str(exc)) from None

    async def _answer_input(self, request_id: int, password: bool) -> None:
        broker = self.ctx.broker
        if broker is None:
            return
        try:
            text = await broker.request(password=password)
        except InputCancelled:
            return
        with contextlib.suppress(ReplDied):
            await self._send({"op": "input", "id": request_id, "text": text})

    # -- query mode --------------------------------------------------------------------------

    async def query(self, code: str) -> int:
        if self.alive and self.streams_lost:
            self.ctx.outbox.send(Record.STDERR, b"[krunner] the Python REPL closed its standard output or error; "
                                 b"starting a new one (variables and imports are lost)\n")
        if not self.alive or self.streams_lost:
            await self._teardown(kill=True)
            try:
                await self._spawn()
            except (ReplDied, OSError) as exc:
                self.ctx.outbox.send(Record.STDERR, f"[krunner] query mode is unavailable: {exc}\n".encode())
                return EXIT_NOTHING_TO_RUN
        request_id = next(self._ids)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._done[request_id] = fut
        self._busy = True
        try:
            await self._send({"op": "exec", "id": request_id, "code": code})
            return await fut
        except ReplDied as exc:
            self.ctx.outbox.send(Record.STDERR, f"[krunner] the Python REPL is gone: {exc}\n".encode())
            return EXIT_NOTHING_TO_RUN
        finally:
            self._busy = False
            self._done.pop(request_id, None)
            for task in list(self._input_tasks):
                task.cancel()
            if self.ctx.broker is not None:
                self.ctx.broker.cancel()

    async def complete(self, code: str, cursor: int | None) -> list[str]:
        if not self.alive:
            return []
        request_id = next(self._ids)
        fut: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._completions[request_id] = fut
        try:
            line = completion_context(code, cursor)
            await self._send({"op": "complete", "id": request_id, "code": line, "cursor": None})
            return await asyncio.wait_for(fut, COMPLETE_TIMEOUT)
        except (asyncio.TimeoutError, ReplDied):
            return []
        finally:
            self._completions.pop(request_id, None)

    def interrupt(self) -> bool:
        if self.ctx.jobs.interrupt():
            return True
        if self._child is not None and self._busy:
            if self.ctx.broker is not None:
                self.ctx.broker.cancel()
            return self._child.signal_group(signal.SIGINT)
        return False

    def drain(self) -> None:
        super().drain()
        if self._child is not None:
            self._child.drain()
