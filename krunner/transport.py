"""The ZeroMQ sockets of the REPL channel and the single ordered outbound queue.

Every producer (pipe readers, the query runtime, service replies, status
replies) calls :meth:`Outbox.send`, which never blocks: records are appended to
one FIFO and a single sender task writes them to the PUSH socket in order.  When
the agent is absent or slow, console output beyond ``stream_limit`` bytes is
dropped and accounted for instead of stalling user programs (upstream RE-21);
control records are never dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Union

import zmq
import zmq.asyncio

from .protocol import STREAM_RECORDS, FrameError, Record, decode_frames

log = logging.getLogger("krunner.transport")

Token = Union[Record, str]
#: the stream tokens as they go on the wire (flow-controlled and size-accounted, see Outbox)
STREAM_TOKENS = frozenset(r.value.encode("ascii") for r in STREAM_RECORDS)
DEFAULT_STREAM_LIMIT = 256 * 1024 * 1024


def _token_bytes(token: Token) -> bytes:
    return (token.value if isinstance(token, Record) else token).encode("ascii")


class Outbox:
    """Ordered, non-blocking outbound record queue in front of the PUSH socket."""

    def __init__(self, socket: zmq.asyncio.Socket, stream_limit: int = DEFAULT_STREAM_LIMIT) -> None:
        self._socket = socket
        self._queue: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stream_bytes = 0
        self._stream_limit = stream_limit
        self._dropped_bytes = 0
        self.sent_records = 0

    def send(self, token: Token, payload: bytes = b"") -> None:
        tok = _token_bytes(token)
        if tok in STREAM_TOKENS:
            if not payload:
                return
            if self._stream_bytes + len(payload) > self._stream_limit:
                self._dropped_bytes += len(payload)
                return
            self._stream_bytes += len(payload)
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

    async def run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            token, payload = queue.popleft()
            if token in STREAM_TOKENS:
                self._stream_bytes -= len(payload)
            try:
                await self._socket.send_multipart((token, payload), copy=len(payload) < 65536)
                self.sent_records += 1
            except zmq.ZMQError as exc:
                log.error("dropping outbound %s record: %s", token.decode(), exc)
            if self._dropped_bytes and self._stream_bytes == 0:
                notice = f"[krunner] {self._dropped_bytes} bytes of output were dropped: the agent did not keep up\n"
                self._dropped_bytes = 0
                queue.append((Record.STDERR.value.encode("ascii"), notice.encode()))


class ReplChannel:
    """PULL (ops in) and PUSH (records out) sockets bound on the REPL ports."""

    def __init__(self, ctx: zmq.asyncio.Context, in_port: int, out_port: int, bind_host: str = "*") -> None:
        self.ctx = ctx
        self.inbound = ctx.socket(zmq.PULL)
        self.outbound = ctx.socket(zmq.PUSH)
        for sock in (self.inbound, self.outbound):
            sock.setsockopt(zmq.LINGER, 100)
        self.outbound.setsockopt(zmq.SNDHWM, 100_000)
        self.inbound.setsockopt(zmq.RCVHWM, 100_000)
        self.inbound.bind(f"tcp://{bind_host}:{in_port}")
        self.outbound.bind(f"tcp://{bind_host}:{out_port}")
        self.outbox = Outbox(self.outbound)

    async def receive(self) -> tuple[str, bytes] | None:
        """Next well-formed op as ``(token, payload)``; malformed messages are logged and skipped."""
        frames = await self.inbound.recv_multipart()
        try:
            return decode_frames(frames)
        except FrameError as exc:
            log.warning("ignoring malformed inbound message: %s", exc)
            return None

    def close(self) -> None:
        self.inbound.close(linger=0)
        self.outbound.close(linger=100)
