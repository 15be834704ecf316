"""The outbound queue's flow control with real ZeroMQ (127.0.0.1) and real pipes, in-process.

What the agent sees is covered end to end by tests/reliability/test_flood.py; these pin the
pieces: order, byte budget, the gate that pauses pipe readers, out-of-band replies.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
import zmq
import zmq.asyncio

from krunner.proc import ChildProcess
from krunner.protocol import Record
from krunner.transport import MAX_CHUNK, MONITOR_EVENTS, SNDHWM, STREAM_BUDGET, Outbox

pytestmark = pytest.mark.timeout(60)


class Wire:
    """A bound PUSH socket (the runner's) with an Outbox, and an agent-side PULL that may connect later."""

    def __init__(self, budget: int = STREAM_BUDGET, monitor: bool = False) -> None:
        self.ctx = zmq.asyncio.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, SNDHWM)
        self.push.setsockopt(zmq.LINGER, 0)
        self.port = self.push.bind_to_random_port("tcp://127.0.0.1")
        self.monitor = self.push.get_monitor_socket(MONITOR_EVENTS) if monitor else None
        self.outbox = Outbox(self.push, budget=budget, monitor=self.monitor)
        self.sender = asyncio.get_running_loop().create_task(self.outbox.run())
        self.pull: zmq.asyncio.Socket | None = None

    def connect(self) -> zmq.asyncio.Socket:
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.connect(f"tcp://127.0.0.1:{self.port}")
        return self.pull

    async def agent_leaves_while_streaming(self, records: int) -> None:
        """An agent connects, *records* of output are queued, and it closes once output flows."""
        first = self.connect()
        for _ in range(records):
            self.outbox.send(Record.STDOUT, b"q" * 200_000)
        await first.recv_multipart()  # streaming
        first.close(linger=0)

    async def records_until(self, token: bytes, timeout: float = 20.0) -> list[tuple[bytes, bytes]]:
        assert self.pull is not None
        got = []
        while True:
            tok, payload = await asyncio.wait_for(self.pull.recv_multipart(), timeout)
            got.append((tok, payload))
            if tok == token:
                return got

    async def close(self) -> None:
        self.sender.cancel()
        await asyncio.gather(self.sender, return_exceptions=True)
        if self.monitor is not None:
            self.push.disable_monitor()
        for sock in (self.push, self.pull, self.monitor):
            if sock is not None:
                sock.close(linger=0)
        self.ctx.term()


def run(coro):
    return asyncio.run(coro)


def test_output_is_split_in_order_and_finished_comes_last():
    async def main():
        wire = Wire()
        wire.connect()
        big = bytes(range(256)) * (3 * MAX_CHUNK // 256 + 7)  # not a multiple of the chunk size
        wire.outbox.send(Record.STDOUT, b"first\n")
        wire.outbox.send(Record.STDOUT, big)
        wire.outbox.send(Record.STDERR, b"err\n")
        wire.outbox.send(Record.FINISHED, b'{"exitCode": 0}')
        got = await wire.records_until(b"finished")
        await wire.close()
        return big, got

    big, got = run(main())
    assert got[-1] == (b"finished", b'{"exitCode": 0}')
    stdout = b"".join(p for t, p in got if t == b"stdout")
    assert stdout == b"first\n" + big
    assert max(len(p) for t, p in got if t == b"stdout") == MAX_CHUNK
    assert [t for t, _ in got].index(b"stderr") == len(got) - 2  # stderr after all stdout, before finished


def test_no_agent_closes_the_gate_without_dropping_and_an_agent_gets_everything():
    async def main():
        budget = 1 << 20
        wire = Wire(budget=budget)
        gate = wire.outbox.gate
        block = b"y" * 100_000
        sent = 0
        while gate.is_open:  # nobody connected: the sender task is stuck on the first record
            wire.outbox.send(Record.STDOUT, block)
            sent += len(block)
            assert sent < 4 * budget, "the gate never closed"
        closed_at = wire.outbox.pending_stream_bytes
        wire.outbox.send(Record.STDOUT, block)  # a drain past the budget is still queued, not dropped
        sent += len(block)
        wire.outbox.send(Record.FINISHED, b'{"exitCode": 0}')
        await asyncio.sleep(0.2)
        assert not gate.is_open
        opened = asyncio.get_running_loop().create_future()
        gate.when_open(lambda: opened.set_result(True))
        wire.connect()
        got = await wire.records_until(b"finished")
        await asyncio.wait_for(opened, 5)
        pending = wire.outbox.pending_stream_bytes
        await wire.close()
        return budget, sent, closed_at, got, pending

    budget, sent, closed_at, got, pending = run(main())
    assert budget <= closed_at < budget + 100_000
    assert sum(len(p) for t, p in got if t == b"stdout") == sent
    assert got[-1][0] == b"finished" and pending == 0


def test_status_overtakes_queued_output_but_finished_does_not():
    async def main():
        wire = Wire(budget=1 << 20)
        for _ in range(20):
            wire.outbox.send(Record.STDOUT, b"z" * 100_000)
        wire.outbox.send(Record.FINISHED, b'{"exitCode": 0}')
        wire.outbox.send(Record.STATUS, b"\x81")  # queued last, while output waits for an agent
        await asyncio.sleep(0.1)
        wire.connect()
        got = await wire.records_until(b"finished")
        await wire.close()
        return got

    got = run(main())
    tokens = [t for t, _ in got]
    assert tokens.index(b"status") < tokens.index(b"stdout", 2)  # ahead of most of the output
    assert tokens[-1] == b"finished" and tokens.count(b"stdout") == 20


def test_a_disconnect_while_output_streams_is_reported_to_the_next_agent():
    async def main():
        wire = Wire(monitor=True)
        await wire.agent_leaves_while_streaming(40)
        await asyncio.sleep(0.5)
        wire.connect()
        wire.outbox.send(Record.FINISHED, b'{"exitCode": 0}')
        got = await wire.records_until(b"finished")
        await wire.close()
        return got, wire.outbox.disconnect_notices, wire.outbox.pending_stream_bytes

    got, notices, pending = run(main())
    assert pending == 0
    stderr = [(i, p) for i, (t, p) in enumerate(got) if t == b"stderr"]
    assert notices == 1 and len(stderr) == 1, got[:3]
    index, text = stderr[0]
    assert b"may not have arrived" in text and index <= 1  # ahead of the output still queued


RESTARTS = 24


def test_an_agent_restarting_mid_stream_gets_the_note_every_time():
    """The agent's sockets close and new ones connect at once while output streams (an agent
    restart): the note must reach the new agent, not the connection that is gone – ZeroMQ reports
    the disconnect before its socket retires that connection's pipe (transport.DISCONNECT_SETTLE)."""

    async def main():
        missed = []
        for attempt in range(RESTARTS):
            wire = Wire(monitor=True)
            await wire.agent_leaves_while_streaming(60)
            second = wire.connect()  # no pause: the restarted agent is back before the runner noticed
            wire.outbox.send(Record.FINISHED, b'{"exitCode": 0}')
            got = await wire.records_until(b"finished")
            await wire.close()
            if not any(t == b"stderr" and b"may not have arrived" in p for t, p in got):
                missed.append((attempt, f"{wire.outbox.disconnect_notices} notes made", f"{len(got)} records got"))
            assert second is wire.pull
        return missed

    assert run(main()) == []


def test_an_agent_leaving_after_its_run_ended_is_not_reported():
    async def main():
        wire = Wire(monitor=True)
        first = wire.connect()
        wire.outbox.send(Record.STDOUT, b"hello\n")
        wire.outbox.send(Record.FINISHED, b'{"exitCode": 0}')
        wire.outbox.send(Record.STATUS, b"\x81")
        for _ in range(3):
            await first.recv_multipart()
        first.close(linger=0)  # at once: it had everything up to the run's end
        await asyncio.sleep(0.5)
        wire.connect()
        wire.outbox.send(Record.FINISHED, b'{"exitCode": 0}')
        got = await wire.records_until(b"finished")
        await wire.close()
        return got

    assert run(main()) == [(b"finished", b'{"exitCode": 0}')]


WRITER = """
import os, sys, time
block = b"w" * 65536
worst = 0.0
for _ in range({blocks}):
    t0 = time.monotonic()
    view = memoryview(block)
    while view:
        view = view[os.write(1, view):]
    worst = max(worst, time.monotonic() - t0)
os.write(2, b"worst %.3f" % worst)
"""


def test_a_paused_pump_blocks_the_writer_and_loses_nothing():
    """A child writing 48 MiB while no agent reads: the outbox stops at its budget (plus what one
    wakeup and the pipe hold), the child blocks in write(), and everything arrives once an agent
    connects."""
    blocks = 768  # 48 MiB

    async def main():
        wire = Wire()
        err = bytearray()
        child = ChildProcess.spawn(
            [sys.executable, "-c", WRITER.format(blocks=blocks)],
            env=dict(os.environ),
            cwd="/",
            stdout_sink=lambda data: wire.outbox.send(Record.STDOUT, data),
            stderr_sink=err.extend,
            gate=wire.outbox.gate,
        )
        await asyncio.sleep(1.5)  # stalled: no agent
        paused = child.pumps[0].paused
        peak_while_stalled = wire.outbox.peak_stream_bytes
        assert child.returncode is None, "the writer finished although nobody read its output"
        wire.connect()
        received = 0
        while received < blocks * 65536:
            tok, payload = await asyncio.wait_for(wire.pull.recv_multipart(), 20)
            assert tok == b"stdout"
            received += len(payload)
        code = await child.wait()
        peak = wire.outbox.peak_stream_bytes
        await wire.close()
        return paused, peak_while_stalled, peak, received, code, bytes(err)

    paused, peak_while_stalled, peak, received, code, err = run(main())
    assert paused
    assert STREAM_BUDGET <= peak_while_stalled <= STREAM_BUDGET + 8 * 1024 * 1024
    assert peak <= 2 * STREAM_BUDGET
    assert code == 0 and received == blocks * 65536
    assert float(err.split()[1]) >= 1.0, err  # the writer sat in write() while nobody read
