"""The ZeroMQ sockets of the REPL channel and the single ordered outbound queue, with flow control.

Every producer (pipe readers, the query runtime, service replies, status replies) calls
:meth:`Outbox.send`, which never blocks and never drops: records are appended to a queue and a
single sender task writes them to the PUSH socket.  Memory stays bounded by back-pressure, not
by dropping (docs/protocol.md, "Flow control"):

* console output (``stdout``/``stderr``) is split into records of at most :data:`MAX_CHUNK`
  bytes and counted while queued; when :data:`STREAM_BUDGET` bytes are queued the outbox's
  :class:`FlowGate` closes, the pipe readers stop reading (``proc.PipePump``), and the writing
  process blocks on its full pipe, as it would on a terminal.  The gate opens again when the
  queue is down to half the budget;
* the PUSH socket holds at most :data:`SNDHWM` messages (× ``MAX_CHUNK`` bytes) per peer and
  blocks the sender task when full or when no agent is connected, which is what fills the budget;
* replies that belong to no run (``status``, ``completion``, ``apps-result``, service replies)
  go first, ahead of queued output, so the agent's polls are answered while output is paused;
  everything else (output, ``media``, ``waiting-input``, the terminal records) keeps one FIFO
  order, so a run's ``finished`` always follows its output;
* what ZeroMQ and the kernel held for an agent whose connection closes is gone with it (at most
  SNDHWM records plus the socket buffer); if output was on its way, the next agent gets a
  ``stderr`` note at that point (:meth:`Outbox.note_disconnect`).  Queued output is given up only
  when the runner shuts down;
* a disconnect is seen (monitor event) before ZeroMQ's socket has retired the dead connection's
  pipe, and PUSH would go on handing records to it – the note itself among them.  So after every
  disconnect the sender holds for :data:`DISCONNECT_SETTLE` seconds and then makes the socket
  process its pending commands before it sends again (:meth:`Outbox._settle`); when a second
  agent connects while one is connected (a restarted agent, before its old connection is seen to
  close) output waits for that close, at most :data:`SECOND_AGENT_HOLD` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Union

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from .protocol import STREAM_RECORDS, FrameError, Record, decode_frames

log = logging.getLogger("krunner.transport")

Token = Union[Record, str]
#: the stream tokens as they go on the wire (flow-controlled and size-accounted, see Outbox)
STREAM_TOKENS = frozenset(r.value.encode("ascii") for r in STREAM_RECORDS)
#: replies to the agent's polls and requests: no run's output precedes them, so they may overtake it
OUT_OF_BAND_TOKENS = frozenset(
    r.value.encode("ascii")
    for r in (
        Record.STATUS,
        Record.COMPLETION,
        Record.APPS_RESULT,
        Record.SERVICE_RESULT,
        Record.MODEL_SERVICE_RESULT,
        Record.MODEL_SERVICE_STATUS,
    )
)
#: the largest console record (bytes of payload); larger output is split
MAX_CHUNK = 256 * 1024
#: console bytes queued in the outbox before the pipe readers pause
STREAM_BUDGET = 8 * 1024 * 1024
#: messages ZeroMQ may hold per connected agent (so at most SNDHWM × MAX_CHUNK bytes of output)
SNDHWM = 8
#: the kernel's send buffer of an agent's connection (what a vanished agent can take with it, besides SNDHWM)
SNDBUF = 512 * 1024
#: a disconnect this soon after output was handed to ZeroMQ (and before any record that ends or
#: follows it) may have cost output still in flight: the next agent is told
DISCONNECT_WINDOW = 2.0
#: how long the sender holds after a disconnect so that ZeroMQ retires the dead connection's pipe
#: before the next record (a reply, or the loss note) is handed to PUSH; the I/O thread needs
#: microseconds for it, the margin is for a loaded machine
DISCONNECT_SETTLE = 0.2
#: how long the sender holds when a second agent connects while one is connected: PUSH would split
#: output between the two, and the older one is most likely an agent that restarted and whose
#: disconnect is still on its way; output waits for that disconnect (or this long, when both live)
SECOND_AGENT_HOLD = 0.5
#: the monitor events the outbox follows (a connection accepted, a connection gone)
MONITOR_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
#: the pause before a record is handed to ZeroMQ again after a send that found no room after all
RETRY_AFTER_EAGAIN = 0.005
#: payloads at least this large are handed to ZeroMQ without a copy
ZERO_COPY_MIN = 65536


def _token_bytes(token: Token) -> bytes:
    return (token.value if isinstance(token, Record) else token).encode("ascii")


class FlowGate:
    """Open while the outbox has room for more console output; readers pause while it is closed."""

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[Callable[[], None]] = []

    @property
    def is_open(self) -> bool:
        return self._open

    def when_open(self, callback: Callable[[], None]) -> None:
        """Call *callback* (once, from the event loop) when the gate opens; at once if it is open."""
        if self._open:
            asyncio.get_running_loop().call_soon(callback)
        else:
            self._waiters.append(callback)

    def close(self) -> None:
        self._open = False

    def open(self) -> None:
        if self._open:
            return
        self._open = True
        waiters, self._waiters = self._waiters, []
        loop = asyncio.get_running_loop()
        for callback in waiters:
            loop.call_soon(callback)


class Outbox:
    """Ordered outbound record queue in front of the PUSH socket; see the module docstring."""

    def __init__(self, socket: zmq.asyncio.Socket, budget: int = STREAM_BUDGET, max_chunk: int = MAX_CHUNK,
                 monitor: zmq.asyncio.Socket | None = None) -> None:
        self._socket = socket
        self._monitor = monitor
        self._sending_stream = False
        self._last_inband_was_stream = False
        self._last_stream_sent = 0.0
        bound = SNDHWM * max_chunk + 2 * SNDBUF
        self._notice = (Record.STDERR.value.encode("ascii"), (
            "\n[krunner] the agent's connection closed while output was streaming: output sent just before "
            f"this point may not have arrived (up to {bound} bytes from the runner's side, plus what a proxy "
            "on the way held)\n").encode())
        self.disconnect_notices = 0
        #: the loop time until which the sender holds after a disconnect or a second agent (see _settle)
        self._settle_until = 0.0
        #: connections to agents, as the socket monitor reports them
        self.agents = 0
        self._queue: collections.deque[tuple[bytes, bytes | memoryview]] = collections.deque()
        self._urgent: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._budget = budget
        self._resume_at = budget // 2
        self._max_chunk = max_chunk
        self._stream_bytes = 0
        self.gate = FlowGate()
        self.sent_records = 0
        #: the highest number of console bytes queued at once (for tests and figures)
        self.peak_stream_bytes = 0

    @property
    def pending_stream_bytes(self) -> int:
        """Console bytes queued and not yet handed to ZeroMQ."""
        return self._stream_bytes

    def send(self, token: Token, payload: bytes = b"") -> None:
        """Queue one record; never blocks, never drops.  Output past the budget closes the gate."""
        tok = _token_bytes(token)
        if tok in OUT_OF_BAND_TOKENS:
            self._urgent.append((tok, payload))
        elif tok in STREAM_TOKENS:
            size = len(payload)
            if not size:
                return
            if size <= self._max_chunk:
                self._queue.append((tok, payload))
            else:
                view = memoryview(payload)
                for start in range(0, size, self._max_chunk):
                    self._queue.append((tok, view[start:start + self._max_chunk]))
            self._stream_bytes += size
            if self._stream_bytes > self.peak_stream_bytes:
                self.peak_stream_bytes = self._stream_bytes
            if self._stream_bytes >= self._budget:
                self.gate.close()
        else:
            self._queue.append((tok, payload))
        self._idle.clear()
        self._wakeup.set()

    async def drained(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been handed to ZeroMQ."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def note_disconnect(self) -> None:
        """An agent's connection closed.  What ZeroMQ and the kernel held for it is gone with it (at most
        SNDHWM records and the socket buffers, docs/protocol.md "Flow control"); if output was streaming,
        the next agent is told, ahead of everything still queued – no loss goes unmentioned."""
        now = asyncio.get_running_loop().time()
        self.agents = max(0, self.agents - 1)
        # the one agent left is to get everything from here on: no longer than the settle time
        self._settle_until = now + DISCONNECT_SETTLE if self.agents <= 1 else max(
            self._settle_until, now + DISCONNECT_SETTLE)
        self._wakeup.set()
        recent = self._last_inband_was_stream and now - self._last_stream_sent < DISCONNECT_WINDOW
        if not (self._stream_bytes or self._sending_stream or recent):
            return  # the agent had taken all output (the last thing it got was no output, or long ago)
        if self._queue and self._queue[0] is self._notice:
            return  # not yet told: one notice covers both
        self.disconnect_notices += 1
        self._queue.appendleft(self._notice)
        self._stream_bytes += len(self._notice[1])  # accounted like any output (the sender subtracts it)
        self._idle.clear()
        self._wakeup.set()

    def note_connect(self) -> None:
        """An agent's connection was accepted.  If another one is still connected, hold output for
        up to :data:`SECOND_AGENT_HOLD` seconds: an agent that restarts connects again before the
        runner has seen its old connection close, and PUSH would hand every other record to that
        dead connection.  The old connection's disconnect ends the hold (:meth:`note_disconnect`)."""
        self.agents += 1
        if self.agents >= 2:
            self._settle_until = max(self._settle_until, asyncio.get_running_loop().time() + SECOND_AGENT_HOLD)
            self._wakeup.set()

    async def _watch_connections(self) -> None:
        assert self._monitor is not None
        while True:
            event = parse_monitor_message(await self._monitor.recv_multipart())
            if event["event"] == zmq.EVENT_ACCEPTED:
                self.note_connect()
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self.note_disconnect()

    async def run(self) -> None:
        watcher = asyncio.get_running_loop().create_task(self._watch_connections()) if self._monitor else None
        try:
            await self._run()
        except asyncio.CancelledError:
            # shutdown: the one case where queued output is given up (docs/protocol.md, "Flow control")
            left = len(self._queue) + len(self._urgent)
            if left:
                log.warning("shutting down with %d records undelivered (%d bytes of output): no agent took them",
                            left, self._stream_bytes)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _settle(self) -> None:
        """Hold after a disconnect until ZeroMQ has retired the dead connection's pipe: wait out the
        settle time, then have the socket process its pending commands (reading ``EVENTS`` does that
        without the throttle ``send`` applies), so no record goes to a connection that is gone."""
        loop = asyncio.get_running_loop()
        while (left := self._settle_until - loop.time()) > 0:
            await asyncio.sleep(left)
        self._settle_until = 0.0
        self._socket.getsockopt(zmq.EVENTS)

    @staticmethod
    async def _send_until_taken(send: Callable, token: bytes, payload: bytes | memoryview) -> None:
        """Hand one record to ZeroMQ, waiting as long as that takes.  pyzmq's asyncio ``send`` checks
        ``EVENTS`` for room and then sends without blocking; when a connection is retired in between
        (the send processes ZeroMQ's pending commands first) that send fails with EAGAIN although
        nothing was wrong.  That is no reason to drop the record: wait a moment and send it again."""
        while True:
            try:
                await send((token, payload), copy=len(payload) < ZERO_COPY_MIN)
                return
            except zmq.Again:
                await asyncio.sleep(RETRY_AFTER_EAGAIN)

    async def _run(self) -> None:
        queue, urgent = self._queue, self._urgent
        send = self._socket.send_multipart
        while True:
            if self._settle_until:
                await self._settle()
            if urgent:
                token, payload = urgent.popleft()
            elif queue:
                token, payload = queue.popleft()
            else:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            stream = token in STREAM_TOKENS
            self._sending_stream = stream
            try:
                # waits while the agent is absent or its pipe is full (SNDHWM): that is the back-pressure
                await self._send_until_taken(send, token, payload)
                self.sent_records += 1
            except zmq.ZMQError as exc:
                log.error("cannot send an outbound %s record: %s", token.decode(), exc)
            finally:
                self._sending_stream = False
                if stream:
                    self._stream_bytes -= len(payload)
                    self._last_stream_sent = asyncio.get_running_loop().time()
                    if self._stream_bytes <= self._resume_at:
                        self.gate.open()
                if token not in OUT_OF_BAND_TOKENS:
                    self._last_inband_was_stream = stream


class ReplChannel:
    """PULL (ops in) and PUSH (records out) sockets bound on the REPL ports."""

    def __init__(self, ctx: zmq.asyncio.Context, in_port: int, out_port: int, bind_host: str = "*") -> None:
        self.ctx = ctx
        self.inbound = ctx.socket(zmq.PULL)
        self.outbound = ctx.socket(zmq.PUSH)
        for sock in (self.inbound, self.outbound):
            sock.setsockopt(zmq.LINGER, 100)
        # bounded in bytes: at most SNDHWM records of at most MAX_CHUNK bytes wait for one agent
        self.outbound.setsockopt(zmq.SNDHWM, SNDHWM)
        self.outbound.setsockopt(zmq.SNDBUF, SNDBUF)
        self.inbound.setsockopt(zmq.RCVHWM, 100_000)
        self.inbound.bind(f"tcp://{bind_host}:{in_port}")
        self.outbound.bind(f"tcp://{bind_host}:{out_port}")
        self.monitor = self.outbound.get_monitor_socket(MONITOR_EVENTS)
        self.outbox = Outbox(self.outbound, monitor=self.monitor)

    async def receive(self) -> tuple[str, bytes] | None:
        """Next well-formed op as ``(token, payload)``; malformed messages are logged and skipped."""
        frames = await self.inbound.recv_multipart()
        try:
            return decode_frames(frames)
        except FrameError as exc:
            log.warning("ignoring malformed inbound message: %s", exc)
            return None

    def close(self) -> None:
        self.outbound.disable_monitor()
        self.monitor.close(linger=0)
        self.inbound.close(linger=0)
        self.outbound.close(linger=100)
