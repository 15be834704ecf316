"""PTY mode: an interactive shell on ports 2002 (keystrokes in) and 2003 (screen out).

Wire format is upstream's: single-frame raw byte messages, SUB bound on 2002
and a publisher bound on 2003.  Improvements that keep that format:

* the publisher is an XPUB socket, so when a viewer subscribes (the first one,
  or again after everyone left) the recent screen output (scrollback) is
  replayed instead of being lost to the slow-joiner problem (RE-37);
* the shell is respawned whenever it exits, with a short back-off when it dies
  immediately;
* control commands (``%ping``, ``%resize R C``) are parsed without argparse, so
  bad input is an error message, never a crash (RE-35), and each command ends
  with exactly one terminal record (RE-36).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence

import zmq
import zmq.asyncio

from .contract import PTY_IN_PORT, PTY_OUT_PORT
from .proc import started_group
from .protocol import Record
from .ptyshell import PtyShell, RestartBackoff
from .transport import Outbox

log = logging.getLogger("krunner.terminal")

SCROLLBACK_BYTES = 64 * 1024
MAX_INPUT_WHILE_RESTARTING = 64 * 1024
USAGE = "usage: %ping | %resize <rows> <cols>\n"


class Terminal:
    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: str,
        in_port: int = PTY_IN_PORT,
        out_port: int = PTY_OUT_PORT,
    ) -> None:
        self._zctx = ctx
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.in_port, self.out_port = in_port, out_port
        self.size = (24, 80)
        self.shell: PtyShell | None = None
        self._scrollback: collections.deque[bytes] = collections.deque()
        self._scrollback_len = 0
        self._subscribers = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._backoff = RestartBackoff()
        self._sub: zmq.asyncio.Socket | None = None
        self._pub: zmq.asyncio.Socket | None = None
        self._pending_input = bytearray()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._sub = self._zctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.bind(f"tcp://*:{self.in_port}")
        self._pub = self._zctx.socket(zmq.XPUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(f"tcp://*:{self.out_port}")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._input_loop()), loop.create_task(self._subscription_loop())]
        self._spawn()

    def _spawn(self) -> None:
        rows, columns = self.size
        shell = PtyShell(
            self.argv, env=self.env, cwd=self.cwd, rows=rows, columns=columns,
            on_output=self._publish, on_exit=lambda: self._on_exit(shell),
        )
        shell.start()
        assert shell.pid is not None
        started_group(shell.pid)  # ptyprocess makes the shell a session leader
        self.shell = shell
        if self._pending_input:
            pending, self._pending_input = bytes(self._pending_input), bytearray()
            shell.write(pending)

    async def shutdown(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self.shell is not None:
            self.shell.kill()
        for sock in (self._sub, self._pub):
            if sock is not None:
                sock.close(linger=0)

    # -- output ------------------------------------------------------------------------------

    def _publish(self, data: bytes) -> None:
        self._scrollback.append(data)
        self._scrollback_len += len(data)
        while self._scrollback_len > SCROLLBACK_BYTES and len(self._scrollback) > 1:
            self._scrollback_len -= len(self._scrollback.popleft())
        if self._pub is not None:
            self._pub.send(data)

    def _on_exit(self, shell: PtyShell) -> None:
        shell.close()
        if not self._stopping:
            self._tasks = [t for t in self._tasks if not t.done()]
            self._tasks.append(asyncio.get_running_loop().create_task(self._respawn(shell)))

    async def _respawn(self, shell: PtyShell) -> None:
        code = await shell.wait()
        if not shell.reaped:  # the pty ended but the shell lingers
            shell.kill()
        status = "?" if code is None else str(code)
        delay = self._backoff.next_delay(time.monotonic() - shell.started_at)
        self._publish(f"\r\n[krunner] shell exited (status {status}); restarting...\r\n".encode())
        await asyncio.sleep(delay)
        if not self._stopping:
            try:
                self._spawn()
            except Exception as exc:
                log.error("cannot respawn the terminal shell: %s", exc)
                self._publish(f"[krunner] cannot start {self.argv[0]}: {exc}\r\n".encode())

    async def _subscription_loop(self) -> None:
        assert self._pub is not None
        while True:
            msg = await self._pub.recv()
            if not msg:
                continue
            if msg[0] == 1:
                self._subscribers += 1
                if self._subscribers == 1 and self._scrollback:
                    self._pub.send(b"".join(self._scrollback))
            elif msg[0] == 0:
                self._subscribers = max(0, self._subscribers - 1)

    # -- input -------------------------------------------------------------------------------

    async def _input_loop(self) -> None:
        assert self._sub is not None
        while True:
            frames = await self._sub.recv_multipart()
            self._write(frames[0])

    def _write(self, data: bytes) -> None:
        shell = self.shell
        if shell is None or shell.exited:  # the shell is restarting: keep the keystrokes for the new one
            room = MAX_INPUT_WHILE_RESTARTING - len(self._pending_input)
            if room > 0:
                self._pending_input += data[:room]
            return
        shell.write(data)

    # -- control commands (over the `code` op) -----------------------------------------------

    def handle_command(self, text: str, outbox: Outbox) -> int:
        words = text.strip().split()
        command = words[0] if words else ""
        if command == "%ping" and len(words) == 1:
            outbox.send(Record.STDOUT, b"pong!")
            return 0
        if command == "%resize":
            try:
                rows, cols = (int(w) for w in words[1:])
                if not (0 < rows < 10000 and 0 < cols < 10000):
                    raise ValueError
            except ValueError:
                outbox.send(Record.STDERR, b"%resize needs two positive integers: %resize <rows> <cols>\n")
                return 2
            self.size = (rows, cols)
            if self.shell is not None and not self.shell.exited:
                self.shell.resize(rows, cols)
            outbox.send(Record.STDOUT, f"OK; terminal resized to {rows} lines and {cols} columns".encode())
            return 0
        outbox.send(Record.STDERR, f"Invalid command: {text.strip()[:80]!r}\n{USAGE}".encode())
        return 127
