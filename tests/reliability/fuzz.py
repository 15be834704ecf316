"""A seeded fuzzer of the REPL channel: random frames and valid ops with malformed or huge payloads.

:func:`generate` turns a seed into a list of inbound messages (each a list of frames) – the same
seed always gives the same messages. :func:`run_messages` sends them to a kernel as fast as the
runner takes them, lets it work until nothing moves, then recovers it the way an agent would (one
``interrupt``, then a marker ``code`` query) and checks the runner's answers against what each op
is owed:

* every op that expects a reply (``status``, ``get-apps``, ``complete``, ``start-service``,
  ``start-model-service``) gets exactly one;
* every serial op (``clean``/``build``/``exec``/``code``) ends with its terminal record, or is
  folded into the ``finished`` of the batch step after it (its exit code is in ``steps``, see
  :mod:`krunner.batch_fold`; ``build-finished`` may carry a folded ``clean`` too). The marker query is queued behind all of them, so once it is
  answered nothing may still be owed.

The oracle is written for any runner, upstream's included: a runner that died or stopped
answering is a figure (``container exited``, ``wedged (>N s)``), never a hang.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import zmq

from krunner.protocol import Op, Record

Message = list[bytes]

#: the reply owed to each request op
REPLY_OF: dict[str, str] = {
    Op.STATUS.value: Record.STATUS.value,
    Op.GET_APPS.value: Record.APPS_RESULT.value,
    Op.COMPLETE.value: Record.COMPLETION.value,
    Op.START_SERVICE.value: Record.SERVICE_RESULT.value,
    Op.START_MODEL_SERVICE.value: Record.MODEL_SERVICE_RESULT.value,
}
TERMINAL_OF: dict[str, str] = {
    Op.CLEAN.value: Record.CLEAN_FINISHED.value,
    Op.BUILD.value: Record.BUILD_FINISHED.value,
    Op.EXEC.value: Record.FINISHED.value,
    Op.CODE.value: Record.FINISHED.value,
}
SERIAL = frozenset(TERMINAL_OF)
TERMINALS = frozenset(TERMINAL_OF.values())

#: op → weight in the valid-op mix
OP_WEIGHTS: dict[str, int] = {
    "code": 14, "exec": 8, "build": 7, "clean": 5, "status": 8, "get-apps": 5, "complete": 12,
    "start-service": 8, "start-model-service": 5, "shutdown-service": 4, "input": 8, "interrupt": 2, "event": 6,
}

PY_SNIPPETS = [
    "print(1)", "1/0", "x = [0] * 1000\nprint(len(x))", "import sys; sys.exit(3)", "raise SystemExit",
    "import time; time.sleep(0.05)", "print('y' * 100000)", "import sys; sys.stderr.write('e' * 5000)",
    "def f(:\n", "print(input('? '))", "import os; print(os.getpid())", "display(1)", "while False: pass",
    "import time\nfor i in range(3): print(i); time.sleep(0.01)",
]
SH_SNIPPETS = [
    "echo hi", "exit 3", "*", "true", "false", "sleep 0.05", "yes | head -c 200000", "echo err >&2",
    "printf '\\000\\377binary'", "cat /dev/null", "ls /nonexistent", "sh -c 'kill -9 $$'",
]
#: programs that run until interrupted (rare: each costs one interrupt in the recovery)
BLOCKING = {"code": ["while True: pass", "import time; time.sleep(3600)", "input()"],
            "exec": ["sleep 3600", "cat"], "build": ["sleep 3600"], "clean": ["sleep 3600"]}


@dataclass(frozen=True)
class FuzzConfig:
    count: int = 10_000
    #: probability that a message is raw random frames instead of a valid op
    raw_frames: float = 0.08
    #: probability that a payload is huge (up to max_huge bytes), within total_huge for the run
    huge: float = 0.01
    max_huge: int = 10 << 20
    total_huge: int = 160 << 20
    #: probability that a serial op runs until interrupted
    blocking: float = 0.002


def _rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def _deep_json(rng: random.Random) -> bytes:
    depth = rng.choice([100, 5_000, 100_000])
    return (b"[" * depth) + (b"]" * depth) if rng.random() < 0.5 else (b'{"a":' * depth) + b"1" + (b"}" * depth)


def _json_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1 << 70, 3.5, float("1e308")])
    if kind == 3:
        return "".join(rng.choice("abc/\\\"'\n\x00\u2603") for _ in range(rng.randrange(12)))
    if kind == 4:
        return rng.choice(["", "sshd", "ttyd", "jupyter", "x" * 300, "../../etc/passwd"])
    if kind == 5:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["name", "port", "ports", "protocol", "options", "arguments", "envs", "code", "cursor", "line",
            "type", "data", "model_path", "service", "start_command", "model"]
    return {rng.choice(keys): _json_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def _structured(rng: random.Random, op: str) -> bytes:
    """A JSON payload shaped like the op's request, with random holes and wrong types."""
    if op == "complete":
        body: object = {"code": rng.choice(["import o", "pri", "x.", "", "\u2603" * 5, 1, None]),
                        "cursor": rng.choice([None, 0, -5, 8, 1 << 40, "3"])}
    elif op == "start-service":
        body = {"name": rng.choice(["sshd", "ttyd", "nonexistent", "", 3, None]),
                "port": rng.choice([8080, 0, -1, 70000, "x"]), "ports": rng.choice([[8080], [], "x", [None]]),
                "protocol": rng.choice(["http", "tcp", None, 5]), "options": rng.choice([{}, [], None])}
    elif op == "start-model-service":
        body = {"name": rng.choice(["m", "", None]), "model_path": rng.choice(["/models", "", 3]),
                "service": rng.choice([{"start_command": ["true"]}, {"start_command": "sleep 0.1"}, {}, None, []])}
    elif op == "event":
        body = {"type": rng.choice(["oom", "x", None, 3]), "data": _json_value(rng)}
    elif op == "shutdown-service":
        body = rng.choice(["nonexistent", "sshd", "", None, 3, ["x"]])
    else:
        body = _json_value(rng)
    return json.dumps(body).encode()


def _payload(rng: random.Random, op: str, huge_left: list[int], cfg: FuzzConfig) -> bytes:
    if huge_left[0] > 0 and rng.random() < cfg.huge:
        size = rng.randrange(100_000, cfg.max_huge + 1)
        size = min(size, huge_left[0])
        huge_left[0] -= size
        if op == "code":
            return b"x = 1\n" + b"#" * size + b"\nprint('huge done')"
        if op in SERIAL:
            return b"echo " + b"a" * size
        filler = rng.choice([b"a", b"[", b"\xff", b" "])
        return (b'{"code": "' + filler * size + b'"}') if op == "complete" else filler * size
    if op in SERIAL and rng.random() < cfg.blocking:
        return rng.choice(BLOCKING[op]).encode()
    kind = rng.randrange(10)
    if kind == 0:
        return b""
    if kind == 1:
        return _rand_bytes(rng, rng.randrange(1, 300))
    if kind == 2:
        return b"\xff\xfe" + _rand_bytes(rng, 8)  # never UTF-8
    if kind == 3:
        return _deep_json(rng)
    if kind == 4:
        return b"{" + _rand_bytes(rng, 5)  # broken JSON
    if kind in (5, 6) and op in SERIAL:
        return rng.choice(PY_SNIPPETS if op == "code" else SH_SNIPPETS).encode()
    if kind == 7:
        return json.dumps(_json_value(rng)).encode()
    return _structured(rng, op)


def _raw_frames(rng: random.Random) -> Message:
    n = rng.choice([0, 1, 1, 3, 4, 2])
    if n == 0:
        return [b""]
    frames = [_rand_bytes(rng, rng.randrange(0, 40)) for _ in range(n)]
    if n == 2 and rng.random() < 0.5:  # a 2-frame message whose token is close to a real op
        frames[0] = rng.choice([b"CODE", b"code ", b"exec\x00", b"status\xff", b"", b"get_apps"])
    return frames


def generate(seed: int, cfg: FuzzConfig = FuzzConfig()) -> list[Message]:
    rng = random.Random(seed)
    ops, weights = zip(*OP_WEIGHTS.items())
    huge_left = [cfg.total_huge]
    out: list[Message] = []
    for _ in range(cfg.count):
        if rng.random() < cfg.raw_frames:
            out.append(_raw_frames(rng))
            continue
        op = rng.choices(ops, weights)[0]
        out.append([op.encode(), _payload(rng, op, huge_left, cfg)])
    return out


def as_op(message: Message) -> str | None:
    """The op the runner reads from *message* (the wire rules of krunner.protocol.decode_frames)."""
    if len(message) != 2:
        return None
    try:
        token = message[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    return token if token in {o.value for o in Op} else None


# --------------------------------------------------------------------------- running


@dataclass
class Received:
    """What came back, counted by record type; terminal records kept with their payloads."""

    counts: Counter = field(default_factory=Counter)
    terminals: list[tuple[str, bytes]] = field(default_factory=list)
    stdout_tail: bytearray = field(default_factory=bytearray)
    last_at: float = field(default_factory=time.monotonic)
    last_terminal_at: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, token: str, payload: bytes) -> None:
        with self.lock:
            now = time.monotonic()
            self.counts[token] += 1
            self.last_at = now
            if token in TERMINALS:
                self.terminals.append((token, payload[:512]))
                self.last_terminal_at = now
            elif token == Record.STDOUT.value:
                self.stdout_tail += payload[-4096:]
                del self.stdout_tail[:-8192]


class Channel:
    """Raw agent-side sockets: a receiver thread collects everything the runner sends."""

    def __init__(self, in_port: int, out_port: int) -> None:
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.setsockopt(zmq.SNDHWM, 1000)
        self.push.connect(f"tcp://127.0.0.1:{in_port}")
        self.received = Received()
        self._stop = threading.Event()
        self._out_port = out_port
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._recv_loop, name="fuzz-recv", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _recv_loop(self) -> None:
        pull = self.ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.connect(f"tcp://127.0.0.1:{self._out_port}")
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not pull.poll(100):
                    continue
                frames = pull.recv_multipart()
                token = frames[0].decode("ascii", "replace") if frames else ""
                self.received.add(token, frames[1] if len(frames) > 1 else b"")
        finally:
            pull.close(0)

    def send(self, frames: Message, deadline: float) -> bool:
        """Send one message; False if the runner did not take it before *deadline*."""
        while True:
            try:
                self.push.send_multipart(frames, flags=zmq.NOBLOCK)
                return True
            except zmq.Again:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.005)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.push.close(0)
        self.ctx.term()


@dataclass
class FuzzResult:
    messages: int
    sent: int
    ops: Counter
    received: Counter
    #: owed replies that never came, by op (after the marker query was answered)
    missing: dict[str, int]
    #: serial ops whose terminal record never came (folded steps counted as answered)
    serial_missing: int
    marker_answered: bool
    seconds_to_answer: float | None
    interrupts: int
    alive: bool
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.alive and self.marker_answered and not self.missing and self.serial_missing == 0 and not self.error

    def summary(self) -> str:
        if not self.alive:
            return "container exited"
        if not self.marker_answered:
            return "later query never answered"
        if self.missing or self.serial_missing:
            return f"replies missing: {dict(self.missing)}, serial {self.serial_missing}"
        return "all answered"


def _folded_steps(payload: bytes) -> int:
    try:
        steps = json.loads(payload).get("steps") or {}
        return len(steps) if isinstance(steps, dict) else 0
    except (ValueError, AttributeError):
        return 0


def run_messages(in_port: int, out_port: int, messages: list[Message], *, alive=lambda: True,
                 send_timeout: float = 120.0, drain_timeout: float = 60.0, recover_timeout: float = 30.0,
                 stall: float = 2.0, max_interrupts: int = 1, settle: float = 12.0, settle_max: float = 120.0,
                 pace: int = 16) -> FuzzResult:
    """Send *messages*; let the runner work until nothing ends for *stall* s (at most
    *drain_timeout*); then ``interrupt`` and a marker ``code`` query, as an agent whose user hits
    stop and runs something else. The marker must be answered within *recover_timeout*; up to
    *max_interrupts* rounds (interrupt + a new marker) are tried. Then every reply is accounted for.

    *pace*: at most this many serial ops are left unanswered before the next message is sent (so
    they run instead of being cancelled wholesale by the stream's own interrupts); a runner that
    does not move for *stall* s is sent the next message anyway. 0 sends flat out.
    """
    ch = Channel(in_port, out_port)
    try:
        time.sleep(0.3)  # let both connections come up before the first message
        ops: Counter = Counter()
        deadline = time.monotonic() + send_timeout
        sent = 0
        error = ""
        for m in messages:
            if pace:
                _pace(ops, ch.received, pace, stall)
            if not ch.send(m, deadline):
                error = f"the runner stopped taking messages after {sent} of {len(messages)} ({send_timeout:g} s)"
                break
            sent += 1
            op = as_op(m)
            if op is not None:
                ops[op] += 1
        # the runner works through the queue (coverage) until it is done or blocked
        end = time.monotonic() + drain_timeout
        while time.monotonic() < end and alive():
            if time.monotonic() - ch.received.last_terminal_at > stall and not _owed(ops, ch.received)[1]:
                break  # everything ended
            if time.monotonic() - ch.received.last_terminal_at > stall:
                break  # blocked (a prompt, a sleep, an endless loop)
            time.sleep(0.1)
        # recovery: interrupt, then a new query that must be answered
        interrupts = 0
        answered_after: float | None = None
        markers: list[bytes] = []
        t0 = time.monotonic()
        while interrupts < max_interrupts and answered_after is None and alive():
            ch.send([b"interrupt", b""], time.monotonic() + 5)
            ops["interrupt"] += 1
            interrupts += 1
            marker = f"fuzz-marker-{time.monotonic_ns()}"
            markers.append(marker.encode())
            ch.send([b"code", f"print({marker!r})".encode()], time.monotonic() + 5)
            ops["code"] += 1
            round_end = time.monotonic() + recover_timeout
            while time.monotonic() < round_end and alive():
                if any(mk in bytes(ch.received.stdout_tail) for mk in markers):
                    answered_after = time.monotonic() - t0
                    break
                time.sleep(0.05)
        # the marker's own `finished` and late background replies: completion has a 3 s timeout;
        # start-service replies come one by one (one start per service name at a time, each
        # bounded by its launch timeout), so wait while they keep coming
        hard_end = time.monotonic() + settle_max
        while time.monotonic() < hard_end:
            owed = _owed(ops, ch.received)
            if not owed[0] and not owed[1]:
                break
            if time.monotonic() - ch.received.last_at > settle:
                break
            time.sleep(0.1)
        missing, serial_missing = _owed(ops, ch.received)
        return FuzzResult(
            messages=len(messages), sent=sent, ops=ops, received=Counter(ch.received.counts), missing=missing,
            serial_missing=serial_missing, marker_answered=answered_after is not None,
            seconds_to_answer=None if answered_after is None else round(answered_after, 2),
            interrupts=interrupts, alive=alive(), error=error,
        )
    finally:
        ch.close()


def _pace(ops: Counter, received: Received, limit: int, stall: float) -> None:
    while _owed(ops, received)[1] > limit and time.monotonic() - received.last_terminal_at < stall:
        time.sleep(0.002)


def _owed(ops: Counter, received: Received) -> tuple[dict[str, int], int]:
    with received.lock:
        counts = Counter(received.counts)
        terminals = list(received.terminals)
    missing = {op: n - counts[rec] for op, rec in REPLY_OF.items() if counts[rec] < (n := ops[op])}
    serial = sum(ops[o] for o in SERIAL)
    ended = len(terminals) + sum(_folded_steps(p) for _, p in terminals)
    return missing, max(0, serial - ended)
