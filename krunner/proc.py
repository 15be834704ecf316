"""Child processes in their own process groups, with non-blocking pipe pumps.

Output is read straight from the pipe file descriptors with ``os.read`` in the
event loop (no thread, no extra copies) and handed to a sink callback.  A pump
can also be drained synchronously, which is how the runner guarantees that the
output a program wrote *before* it asked for input (or before a REPL control
event) is sent before the ``waiting-input`` record.

A pump given a :class:`~krunner.transport.FlowGate` stops reading while the gate is closed (the
outbox holds its budget of unsent output): the pipe fills and the writing process blocks on it,
as on a terminal, until the agent takes the output.  A synchronous drain ignores the gate; it
reads at most what the pipe holds (:data:`PIPE_SIZE`), so it overshoots the budget by that much.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Protocol

log = logging.getLogger("krunner.proc")

#: one read; the outbox sends records of at most this size (transport.MAX_CHUNK), so reads are not split
READ_CHUNK = 256 * 1024
#: reads per readiness callback, so one chatty pipe cannot starve the loop
READS_PER_WAKEUP = 32
PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

Sink = Callable[[bytes], None]


class Gate(Protocol):
    """What a pump needs of :class:`krunner.transport.FlowGate`."""

    @property
    def is_open(self) -> bool: ...

    def when_open(self, callback: Callable[[], None]) -> None: ...

#: the process groups (= sessions) of every process the runner started: jobs, the REPL, services,
#: prestart commands, the PTY shell. A background child (``cmd &``) stays in its parent's group
#: after the parent has exited, so signalling the groups reaches it at shutdown.
STARTED_GROUPS: set[int] = set()


#: past this many recorded groups, the empty ones are forgotten on the next record
PRUNE_GROUPS_AT = 64


def started_group(pgid: int) -> None:
    """Record a process group the runner created (see :func:`terminate_started`).

    Groups with no members left are forgotten once more than :data:`PRUNE_GROUPS_AT` are recorded:
    the set stays as small as what still runs (a long session starts thousands of jobs), and a
    group id the kernel hands out again later is not signalled at shutdown as if it were ours."""
    if len(STARTED_GROUPS) >= PRUNE_GROUPS_AT:
        STARTED_GROUPS.intersection_update(_signal_groups(STARTED_GROUPS, 0))
    STARTED_GROUPS.add(pgid)


def _signal_groups(groups: set[int], sig: int) -> set[int]:
    """Signal each group; return the ones that still had members."""
    alive = set()
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
            alive.add(pgid)
        except (ProcessLookupError, PermissionError):
            pass
    return alive


async def terminate_started(grace: float = 1.0) -> int:
    """SIGTERM every process group the runner started, SIGKILL what is left after *grace* seconds.

    Returns how many groups had to be killed. A process that left its group with ``setsid`` is
    out of reach (docs/protocol.md, "Shutdown").
    """
    alive = _signal_groups(STARTED_GROUPS, signal.SIGTERM)
    deadline = asyncio.get_running_loop().time() + grace
    while alive and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        alive = _signal_groups(alive, 0)
    killed = _signal_groups(alive, signal.SIGKILL)
    STARTED_GROUPS.clear()
    return len(killed)


def _enlarge_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)


class PipePump:
    """Reads one pipe until EOF, feeding chunks to ``sink``."""

    def __init__(self, fd: int, sink: Sink, gate: Gate | None = None) -> None:
        self._fd = fd
        self._sink = sink
        self._gate = gate
        self._paused = False
        self._loop = asyncio.get_running_loop()
        self._eof = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._on_readable)

    @property
    def closed(self) -> bool:
        return self._eof.done()

    @property
    def paused(self) -> bool:
        """Not reading: the outbox is full (the writer blocks once the pipe is full too)."""
        return self._paused

    def _on_readable(self) -> None:
        gate = self._gate
        for _ in range(READS_PER_WAKEUP):
            if gate is not None and not gate.is_open:
                self._pause(gate)
                return
            if not self._read_once():
                return

    def _pause(self, gate: Gate) -> None:
        if self._paused or self.closed:
            return
        self._paused = True
        self._loop.remove_reader(self._fd)
        gate.when_open(self._resume)

    def _resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if not self.closed:
            self._loop.add_reader(self._fd, self._on_readable)

    def _read_once(self) -> bool:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return False
        except OSError as exc:
            log.debug("pipe read failed: %s", exc)
            data = b""
        if not data:
            self._close()
            return False
        try:
            self._sink(data)
        except Exception:  # a sink failure must not kill the pump
            log.exception("output sink failed")
        return True

    def drain(self) -> None:
        """Synchronously forward everything currently buffered in the pipe."""
        while not self.closed and self._read_once():
            pass

    def _close(self) -> None:
        if self._eof.done():
            return
        self._paused = False
        self._loop.remove_reader(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._eof.set_result(None)

    async def wait_closed(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self._eof), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def close(self) -> None:
        self.drain()
        self._close()


def _returncode(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


class ChildProcess:
    """A process started in a new session (so it leads its own process group)."""

    def __init__(self, popen: subprocess.Popen[bytes], pumps: Sequence[PipePump]) -> None:
        self.popen = popen
        self.pid = popen.pid
        started_group(popen.pid)  # start_new_session: the child leads its own group
        self.pumps = list(pumps)
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._pidfd: int | None = None
        self._watch_exit()

    # -- spawning ---------------------------------------------------------------------------

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        stdout_sink: Sink,
        stderr_sink: Sink,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        extra_fds: Mapping[int, int] | None = None,
        gate: Gate | None = None,
    ) -> "ChildProcess":
        """Start ``argv`` with stdout/stderr pipes pumped into the sinks.

        ``extra_fds`` maps child fd numbers to parent fds that are dup'ed into place; with a
        ``gate`` the pumps pause while it is closed (back-pressure from the outbox).
        """
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for fd in (out_r, err_r):
            _enlarge_pipe(fd)
        extra = dict(extra_fds or {})

        def place_fds() -> None:  # runs in the child between fork and exec
            for target, source in extra.items():
                os.dup2(source, target, inheritable=True)

        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=stdin,
                stdout=out_w,
                stderr=err_w,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                # Every fd Python or libzmq opens is close-on-exec, so only the fds
                # placed by place_fds (made inheritable there) survive the exec.
                close_fds=not extra,
                preexec_fn=place_fds if extra else None,
            )
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        return cls(popen, [PipePump(out_r, stdout_sink, gate), PipePump(err_r, stderr_sink, gate)])

    # -- exit tracking ----------------------------------------------------------------------

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._pidfd = None
            self._loop.create_task(self._poll_exit())
            return
        self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> bool:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0  # reaped elsewhere; exit status unknown
        if pid == 0:
            return False
        code = _returncode(status)
        self.popen.returncode = code
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if not self._exited.done():
            self._exited.set_result(code)
        return True

    async def _poll_exit(self) -> None:
        delay = 0.002
        while not self._reap():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self, output_grace: float = 0.5) -> int:
        """Exit code (negative = killed by that signal), after the pipes reached EOF.

        Background processes that keep the pipes open do not hold the step
        hostage: after ``output_grace`` seconds the pipes are drained and closed.
        """
        code = await asyncio.shield(self._exited)
        for pump in self.pumps:
            if not await pump.wait_closed(output_grace):
                pump.close()
        return code

    async def wait_exit(self) -> int:
        return await asyncio.shield(self._exited)

    def drain(self) -> None:
        for pump in self.pumps:
            pump.drain()

    # -- signals ----------------------------------------------------------------------------

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the whole process group (grandchildren included)."""
        try:
            os.killpg(self.pid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError as exc:
            log.warning("cannot signal process group %d: %s", self.pid, exc)
            return False

    async def terminate(self, first: int = signal.SIGINT, grace: float = 2.0) -> None:
        """Signal the group with ``first``, escalating to SIGTERM and SIGKILL."""
        sequence = [first] + [s for s in (signal.SIGTERM, signal.SIGKILL) if s != first]
        for sig in sequence:
            if not self.signal_group(sig) and self.returncode is not None:
                return
            if sig == signal.SIGKILL:
                break
            try:
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
            except asyncio.TimeoutError:
                continue
            # The leader is gone; make sure its group is too. After SIGTERM (shutdown) the rest of the
            # group gets the grace period to act on it first (issue 15: SIGTERM, then SIGKILL).
            if sig == signal.SIGTERM:
                await self._group_gone(grace)
            self.signal_group(signal.SIGKILL)
            return

    async def _group_gone(self, timeout: float) -> None:
        deadline = self._loop.time() + timeout
        while self._loop.time() < deadline:
            try:
                os.killpg(self.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            await asyncio.sleep(0.05)

    def kill_now(self) -> None:
        self.signal_group(signal.SIGKILL)
