"""Output floods against any runner: user code prints a deterministic pattern while the agent's side
stalls, disconnects, reconnects or restarts, and the probe counts exact bytes lost, the container's
memory peak over idle, whether the writer was held back, and seconds to recover.

The probe functions take a :class:`~tests.reliability.kernel.ProbeKernel` (ours or upstream) and
return :class:`~tests.reliability.figures.Figures`; they never hang (every wait has a deadline)
and judge nothing about *which* runner they measure: ``tests/reliability/test_flood.py`` asserts
on our figures, ``benchmarks/reliability_compare.py`` prints them beside upstream's.

The agent's side is two raw ZeroMQ sockets (PUSH to the ops port, PULL from the records port),
like the agent's, so a reader can stop reading, close, and come back while the runner floods.
The pattern: ``blocks`` blocks of ``block_size`` bytes, block *k* is ``#%011d`` % k, ``x``s, and
``\\n``; :class:`PatternCheck` compares every received byte with it and locates gaps.

Sizes: the issue's row is 2 GiB; CI runs :data:`CI_TOTAL` (the same code paths; the runner's
bounds are 8 MiB + 8 MiB, far below either size), the comparison script the full 2 GiB.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from krunner.protocol import Op, Record
from krunner.transport import MAX_CHUNK, SNDBUF, SNDHWM

from .figures import Figures, wedged
from .kernel import ProbeKernel
from .memory import MemorySample, mib

BLOCK_SIZE = 1 << 20
FULL_TOTAL = 2 << 30  # the 2 GB
CI_TOTAL = 384 << 20
#: the agent-side receive queue the probe's reader allows (messages): small, so that what a
#: disconnect loses is what the *runner* had in flight, not a big queue in the reader itself
READER_RCVHWM = 4
#: the kernel receive buffer the probe's reader asks for (bytes; Linux doubles it): a fixed size,
#: so that the reader's share of a disconnect's loss does not grow with TCP autotuning
READER_RCVBUF = 256 * 1024
#: the runner's share of what a disconnect may lose (bytes), see docs/protocol.md "Flow control":
#: ZeroMQ's pipe to that agent (SNDHWM records of MAX_CHUNK bytes) and the kernel's send buffer
#: (SNDBUF, which Linux doubles)
RUNNER_LOSS_BOUND = SNDHWM * MAX_CHUNK + 2 * SNDBUF


def _tcp_buffer_max(name: str) -> int:
    """The host's autotuning ceiling ``net.ipv4.<name>`` (its third field), in bytes."""
    return int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])


def disconnect_loss_bound() -> int:
    """What a disconnect may lose on this host (bytes): the runner's share, then docker-proxy's
    two sockets – the one from the runner may autotune its receive buffer up to ``tcp_rmem``'s
    maximum and the one to the agent its send buffer up to ``tcp_wmem``'s (32 MiB and 4 MiB on
    Debian 12) – and the reader's own kernel buffer and READER_RCVHWM records. PUSH has no
    acknowledgements: what TCP and the proxy had accepted for a closed connection is gone."""
    proxy = _tcp_buffer_max("tcp_rmem") + _tcp_buffer_max("tcp_wmem")
    return RUNNER_LOSS_BOUND + proxy + 2 * READER_RCVBUF + READER_RCVHWM * MAX_CHUNK
STDOUT = Record.STDOUT.value.encode()
STDERR = Record.STDERR.value.encode()
FINISHED = Record.FINISHED.value.encode()
STATUS = Record.STATUS.value.encode()

#: the user code: writes the pattern through sys.stdout (text, as print does), timing each write;
#: the worst write shows whether back-pressure reached the writer
FLOOD_CODE = """\
import sys as _s, time as _t
def _flood(blocks, size):
    filler = "x" * (size - 13)
    out = _s.stdout
    worst = 0.0
    for k in range(blocks):
        line = "#%011d%s\\n" % (k, filler)
        t0 = _t.monotonic()
        out.write(line)
        out.flush()
        worst = max(worst, _t.monotonic() - t0)
    _s.stderr.write("flood-done worst_write_s=%.3f\\n" % worst)
    _s.stderr.flush()
_flood({blocks}, {block_size})
"""

_HEADER = re.compile(rb"#(\d{11})")


class PatternCheck:
    """Streams received stdout against the pattern: exact bytes, gaps (where and how many bytes)."""

    def __init__(self, blocks: int, block_size: int = BLOCK_SIZE) -> None:
        self.blocks, self.block_size = blocks, block_size
        self.expected = blocks * block_size
        self.received = 0
        self.offset = 0  # pattern offset of the next byte, while in sync
        self.gaps: list[tuple[int, int]] = []  # (pattern offset, bytes missing)
        self.surplus = 0  # bytes past the end of the pattern (duplicates, foreign output)
        self._lost_at: int | None = None  # out of sync since this pattern offset
        self._skipped = 0  # bytes received since then (the tail of a block, before the next header)
        self._carry = b""  # the last bytes of the previous chunk, while out of sync (a split header)
        self._filler = b"x" * block_size

    def _expected(self, offset: int, n: int) -> bytes:
        k, pos = divmod(offset, self.block_size)
        head = b"#%011d" % k
        if pos >= len(head) and pos + n <= self.block_size - 1:
            return self._filler[:n]
        block = head + self._filler[: self.block_size - len(head) - 1] + b"\n"
        return block[pos:pos + n]

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        i = 0
        while i < len(data):
            if self._lost_at is not None:
                i = self._resync(data, i)
                continue
            if self.offset >= self.expected:
                self.surplus += len(data) - i
                return
            n = min(len(data) - i, self.block_size - self.offset % self.block_size)
            if data[i:i + n] == self._expected(self.offset, n):
                self.offset += n
                i += n
            else:
                self._lost_at, self._skipped, self._carry = self.offset, 0, b""

    def _resync(self, data: bytes, i: int) -> int:
        assert self._lost_at is not None
        carry = self._carry
        buf = carry + data[i:]
        m = _HEADER.search(buf)
        while m is not None and int(m.group(1)) * self.block_size <= self._lost_at:
            m = _HEADER.search(buf, m.end())
        if m is None:
            keep = buf[-12:]
            self._skipped += len(buf) - len(keep)
            self._carry = keep
            return len(data)
        self._skipped += m.start()
        target = int(m.group(1)) * self.block_size
        self.gaps.append((self._lost_at, target - self._lost_at - self._skipped))
        self._lost_at, self._carry = None, b""
        if m.start() < len(carry):  # the header began in the previous chunk
            self.offset = target + len(carry) - m.start()
            return i
        self.offset = target
        return i + m.start() - len(carry)

    def finish(self) -> None:
        if self._lost_at is not None:
            self._skipped += len(self._carry)
            self.gaps.append((self._lost_at, self.expected - self._lost_at - self._skipped))
            self._lost_at, self._carry = None, b""
        elif self.offset < self.expected:
            self.gaps.append((self.offset, self.expected - self.offset))

    @property
    def lost(self) -> int:
        """Bytes of the pattern that never arrived."""
        return sum(n for _, n in self.gaps)

    @property
    def intact(self) -> bool:
        return not self.gaps and not self.surplus and self.offset == self.expected


@dataclass
class Agent:
    """The agent's two sockets; ``close()`` drops them as a crashed or restarted agent would."""

    kernel: ProbeKernel
    rcvhwm: int = READER_RCVHWM
    ctx: zmq.Context = field(default_factory=zmq.Context)

    def __post_init__(self) -> None:
        self.kernel.close_client()  # the runner's PUSH round-robins: one agent at a time
        self.push = self.ctx.socket(zmq.PUSH)
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, self.rcvhwm)
        self.pull.setsockopt(zmq.RCVBUF, READER_RCVBUF)
        for s in (self.push, self.pull):
            s.setsockopt(zmq.LINGER, 0)
        self.push.connect(f"tcp://127.0.0.1:{self.kernel.kc.repl_in_port}")
        self.pull.connect(f"tcp://127.0.0.1:{self.kernel.kc.repl_out_port}")

    def send(self, op: Op, payload: bytes = b"") -> None:
        self.push.send_multipart([op.value.encode(), payload])

    def recv(self, timeout: float) -> tuple[bytes, bytes] | None:
        if not self.pull.poll(int(timeout * 1000)):
            return None
        token, payload = self.pull.recv_multipart()
        return token, payload

    def close(self) -> None:
        self.push.close(linger=0)
        self.pull.close(linger=0)
        self.ctx.term()


@dataclass
class Flood:
    """One flood run as the agent's side sees it."""

    blocks: int
    block_size: int = BLOCK_SIZE
    check: PatternCheck = field(init=False)
    stderr: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    records: int = 0
    finished: bool = False

    def __post_init__(self) -> None:
        self.check = PatternCheck(self.blocks, self.block_size)

    @property
    def code(self) -> str:
        return FLOOD_CODE.format(blocks=self.blocks, block_size=self.block_size)

    def take(self, token: bytes, payload: bytes) -> bool:
        """Account one record; True when the run finished."""
        self.records += 1
        if token == STDOUT:
            self.check.feed(payload)
        elif token == STDERR:
            self.stderr += payload
        elif token == FINISHED:
            import json

            self.exit_code = int(json.loads(payload or b"{}").get("exitCode", -999))
            self.check.finish()
            self.finished = True
            return True
        return False

    def read(self, agent: Agent, *, until_bytes: int | None = None, deadline: float) -> bool:
        """Read until finished (True), *until_bytes* stdout bytes arrived, or the deadline (False)."""
        if self.finished:
            return True
        while time.monotonic() < deadline:
            if until_bytes is not None and self.check.received >= until_bytes:
                return False
            got = agent.recv(min(1.0, max(0.01, deadline - time.monotonic())))
            if got is not None and self.take(*got):
                return True
        return False

    @property
    def loss_notices(self) -> int:
        """The runner's notes that output sent to a vanished agent may be missing (ours says so)."""
        return bytes(self.stderr).count(b"may not have arrived")

    @property
    def worst_write_s(self) -> float | None:
        m = re.search(rb"worst_write_s=([0-9.]+)", bytes(self.stderr))
        return float(m.group(1)) if m else None


def _size(total: int, block_size: int) -> int:
    return max(1, total // block_size)


def _warm(kernel: ProbeKernel) -> MemorySample:
    c = kernel.client(timeout=60)
    r = c.query("print('warm')", timeout=60)
    assert r.exit_code == 0, f"{kernel.runner.value}: the kernel does not answer a trivial query: {r.stderr}"
    kernel.close_client()
    return kernel.memory.idle()


def _memory_figures(figs: Figures, idle: MemorySample, peak: MemorySample) -> None:
    figs["idle_anon_mib"] = mib(idle.anon)
    figs["peak_over_idle_mib"] = mib(peak.anon - idle.anon)
    figs["peak_usage_over_idle_mib"] = mib(max(0, peak.usage - idle.usage))


def _flood_figures(figs: Figures, flood: Flood, seconds: float, paused: float = 0.0) -> None:
    c = flood.check
    figs["bytes_expected"] = c.expected
    figs["bytes_received"] = c.received
    figs["bytes_lost"] = c.lost if c.received <= c.expected else -(c.received - c.expected)
    figs["intact"] = c.intact
    if c.gaps:
        figs["gaps"] = [[off, n] for off, n in c.gaps[:5]]
    figs["exit_code"] = flood.exit_code
    figs["worst_write_s"] = flood.worst_write_s
    figs["loss_notices"] = flood.loss_notices
    figs["seconds"] = round(seconds, 2)
    busy = seconds - paused
    figs["mib_per_s"] = round(mib(c.received) / busy, 1) if busy > 0 else None  # while someone read


def _status_round_trip(agent: Agent, flood: Flood, timeout: float, op: Op = Op.STATUS, payload: bytes = b"",
                       reply: bytes = STATUS) -> float | None:
    """Send *op* (``status``) and read, accounting the flood's records, until its *reply*; seconds, or None."""
    t0 = time.monotonic()
    agent.send(op, payload)
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        got = agent.recv(min(1.0, deadline - time.monotonic()))
        if got is None:
            continue
        if got[0] == reply:
            return time.monotonic() - t0
        flood.take(*got)
    return None


# -- the probes -------------------------------------------------------------------------------------


def flood_stalled_reader(kernel: ProbeKernel, total: int = CI_TOTAL, stall: float = 4.0,
                         timeout: float = 240.0, block_size: int = BLOCK_SIZE) -> Figures:
    """Row "agent connected but not reading while user code prints 2 GB": the reader takes the first
    records, stops reading for *stall* seconds, then reads everything."""
    figs = Figures("flood, reader stalls", kernel.runner.value)
    flood = Flood(_size(total, block_size), block_size)
    idle = _warm(kernel)
    agent = Agent(kernel)
    t0 = time.monotonic()
    try:
        with kernel.memory.watch() as watch:
            agent.send(Op.CODE, flood.code.encode())
            deadline = t0 + timeout
            flood.read(agent, until_bytes=min(16 << 20, flood.check.expected // 8), deadline=deadline)
            time.sleep(stall)
            # the agent polls while the writer is paused: answered ahead of the queued output?
            figs["status_while_paused_s"] = _status_round_trip(agent, flood, timeout=30)
            done = flood.read(agent, deadline=deadline)
        elapsed = time.monotonic() - t0
    finally:
        agent.close()
    _flood_figures(figs, flood, elapsed, paused=stall)
    _memory_figures(figs, idle, watch.peak)
    figs["stall_s"] = stall
    if not done:
        return figs.judge(False, wedged(timeout) if kernel.alive() else f"runner gone ({kernel.exit_code()})")
    ok = figs["bytes_lost"] == 0 and figs["peak_over_idle_mib"] <= 64
    return figs.judge(ok, f"{mib(flood.check.lost)} MiB lost, peak +{figs['peak_over_idle_mib']} MiB")


def flood_disconnect_reconnect(kernel: ProbeKernel, total: int = CI_TOTAL, away: float = 4.0,
                               timeout: float = 240.0, block_size: int = BLOCK_SIZE) -> Figures:
    """Row "agent disconnected during the same flood, then reconnects": the reader reads a part,
    closes its sockets, nobody is connected for *away* seconds, then a new reader takes the rest."""
    figs = Figures("flood, agent away then back", kernel.runner.value)
    flood = Flood(_size(total, block_size), block_size)
    idle = _warm(kernel)
    t0 = time.monotonic()
    deadline = t0 + timeout
    with kernel.memory.watch() as watch:
        first = Agent(kernel)
        try:
            first.send(Op.CODE, flood.code.encode())
            flood.read(first, until_bytes=flood.check.expected // 4, deadline=deadline)
            received_before = flood.check.received
        finally:
            first.close()
        time.sleep(away)
        second = Agent(kernel)
        try:
            t1 = time.monotonic()
            figs["seconds_to_recover"] = _status_round_trip(second, flood, timeout=30)
            first_record = None
            done = flood.read(second, deadline=deadline)
            first_record = time.monotonic() - t1
        finally:
            second.close()
    elapsed = time.monotonic() - t0
    _flood_figures(figs, flood, elapsed, paused=away)
    _memory_figures(figs, idle, watch.peak)
    figs["away_s"] = away
    figs["received_before_disconnect_mib"] = mib(received_before)
    figs["seconds_second_reader"] = round(first_record, 2) if first_record is not None else None
    if not done:
        return figs.judge(False, wedged(timeout) if kernel.alive() else f"runner gone ({kernel.exit_code()})")
    paused = (figs["worst_write_s"] or 0) >= away / 2  # nobody attached: the writer waited
    ok = _loss_announced(figs) and paused and figs["peak_over_idle_mib"] <= 64
    return figs.judge(ok, f"{mib(flood.check.lost)} MiB lost{_announced(figs)}, peak +{figs['peak_over_idle_mib']} MiB")


def _loss_announced(figs: Figures) -> bool:
    """The issue's goal for a vanished agent: no silent loss, and what is lost within the bound."""
    lost = figs["bytes_lost"]
    return lost is not None and 0 <= lost <= disconnect_loss_bound() and (lost == 0 or figs["loss_notices"] >= 1)


def _announced(figs: Figures) -> str:
    return " (announced)" if figs["bytes_lost"] and figs["loss_notices"] else ""


def agent_restart_mid_stream(kernel: ProbeKernel, total: int = 128 << 20, timeout: float = 120.0,
                             block_size: int = BLOCK_SIZE) -> Figures:
    """Row "agent restart mid-stream": the agent's sockets go away while output streams and new ones
    connect at once; the session goes on (a variable set before is still there)."""
    figs = Figures("agent restart mid-stream", kernel.runner.value)
    flood = Flood(_size(total, block_size), block_size)
    c = kernel.client(timeout=60)
    assert c.query("_probe_state = 41", timeout=60).exit_code == 0
    kernel.close_client()
    deadline = time.monotonic() + timeout
    first = Agent(kernel)
    try:
        first.send(Op.CODE, flood.code.encode())
        flood.read(first, until_bytes=flood.check.expected // 3, deadline=deadline)
    finally:
        first.close()
    second = Agent(kernel)
    try:
        figs["seconds_to_recover"] = recover = _status_round_trip(second, flood, timeout=30)
        done = flood.read(second, deadline=deadline)
    finally:
        second.close()
    figs["bytes_lost"] = flood.check.lost if done else None
    figs["loss_notices"] = flood.loss_notices
    figs["exit_code"] = flood.exit_code
    after = kernel.client(timeout=30).query("print(_probe_state + 1)", timeout=30)
    figs["session_kept"] = after.exit_code == 0 and after.stdout == "42\n"
    if recover is None or not done:
        return figs.judge(False, wedged(timeout) if kernel.alive() else f"runner gone ({kernel.exit_code()})")
    return figs.judge(bool(figs["session_kept"]) and _loss_announced(figs),
                      f"status answered {recover:.2f} s after the restart; {mib(flood.check.lost)} MiB lost"
                      f"{_announced(figs)}")


def interrupt_while_paused(kernel: ProbeKernel, total: int = CI_TOTAL, stall: float = 3.0,
                           timeout: float = 60.0, block_size: int = BLOCK_SIZE) -> Figures:
    """``interrupt`` while the writer is paused (the agent connected, not reading): the run ends
    once the agent reads again, with the output before the interrupt intact and nothing after."""
    figs = Figures("interrupt while output is paused", kernel.runner.value)
    flood = Flood(_size(total, block_size), block_size)
    _warm(kernel)
    agent = Agent(kernel)
    try:
        deadline = time.monotonic() + timeout
        agent.send(Op.CODE, flood.code.encode())
        flood.read(agent, until_bytes=min(16 << 20, flood.check.expected // 8), deadline=deadline)
        time.sleep(stall)  # the writer blocks on its pipe
        # completion is answered while the cell is paused (the REPL answers it from another thread)
        figs["complete_while_paused_s"] = _status_round_trip(
            agent, flood, timeout=10, op=Op.COMPLETE, payload=b'{"code": "pri", "cursor": 3}',
            reply=Record.COMPLETION.value.encode())
        agent.send(Op.INTERRUPT)
        t0 = time.monotonic()
        done = flood.read(agent, deadline=deadline)
        figs["seconds_to_finish"] = round(time.monotonic() - t0, 2) if done else None
    finally:
        agent.close()
    c = flood.check
    figs["exit_code"] = flood.exit_code
    figs["bytes_received"] = c.received
    figs["bytes_not_written"] = c.expected - c.received  # what the interrupted program never printed
    # in order and without holes up to where it stopped: the only gap is the unwritten tail
    figs["prefix_intact"] = not c.surplus and len(c.gaps) <= 1 and (not c.gaps or c.gaps[0][0] == c.offset)
    if not done:
        return figs.judge(False, wedged(timeout) if kernel.alive() else f"runner gone ({kernel.exit_code()})")
    ok = flood.exit_code not in (0, None) and figs["prefix_intact"] and figs["bytes_not_written"] > 0
    return figs.judge(ok, f"finished {figs['seconds_to_finish']} s after reading resumed")
