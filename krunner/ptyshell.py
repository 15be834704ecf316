"""One shell on a pty, driven from the event loop without blocking.

Shared by PTY mode (:mod:`krunner.terminal`, ports 2002/2003) and the web terminal
(:mod:`krunner.webterm.server`, one shell per connection).

* The shell is spawned with ptyprocess in its own session (``setsid``) with the pty as
  its controlling tty, so its process group id is its pid.
* The pty master is non-blocking and watched with ``add_reader``.  Reading can be
  paused for several independent reasons (a client's PAUSE, WebSocket back-pressure)
  and resumes only when all of them are lifted.
* Keystrokes are written with ``os.write``; any remainder waits for ``add_writer``
  (at most :data:`MAX_PENDING_INPUT` bytes are kept).
* The end of the shell is seen either as EOF on the pty or, where the kernel has
  pidfds, as the shell process exiting (even if a background job still holds the
  pty); what the pty still buffers is forwarded first, then ``on_exit`` runs once.
* :class:`RestartBackoff` is the delay before respawning a shell that keeps dying.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence

from ptyprocess import PtyProcess

log = logging.getLogger("krunner.ptyshell")

READ_CHUNK = 64 * 1024
MAX_PENDING_INPUT = 1 << 20
EXIT_DRAIN_LIMIT = 1 << 20
KILL_GRACE_SECONDS = 1.0
REAP_POLL_SECONDS = 0.05


class PtyShell:
    """A shell process on its own pty; ``on_output(bytes)`` and ``on_exit()`` run in the loop."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: str,
        rows: int = 24,
        columns: int = 80,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[], None],
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.size = (rows, columns)
        self._on_output = on_output
        self._on_exit = on_exit
        self.proc: PtyProcess | None = None
        self.returncode: int | None = None  # once reaped (negative: killed by that signal)
        self._reaped = False
        self.started_at = 0.0
        self._fd = -1
        self._pidfd = -1
        self._pause_reasons: set[str] = set()
        self._reading = False
        self._pending = bytearray()
        self._writing = False
        self._exit_reported = False
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def reaped(self) -> bool:
        """The process has been waited for (``returncode`` is set unless someone else reaped it)."""
        return self._reaped

    @property
    def exited(self) -> bool:
        """``on_exit`` has run (or the shell was closed)."""
        return self._exit_reported or self._closed

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the shell (raises OSError/ptyprocess errors if it cannot be started)."""
        self.proc = PtyProcess.spawn(self.argv, cwd=self.cwd, env=self.env, dimensions=self.size)
        self.started_at = time.monotonic()
        self._fd = self.proc.fd
        os.set_blocking(self._fd, False)
        loop = asyncio.get_running_loop()
        self._set_reading(True)
        try:
            self._pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):  # old kernel: rely on pty EOF alone
            self._pidfd = -1
        if self._pidfd >= 0:
            loop.add_reader(self._pidfd, self._on_process_exit)
        log.info("shell %s started (pid %d, %dx%d)", self.argv[0], self.proc.pid, self.size[1], self.size[0])

    async def terminate(self, grace: float = KILL_GRACE_SECONDS) -> int | None:
        """Close the pty, SIGHUP the shell's process group, SIGKILL after *grace*, and reap.

        Returns the exit code (negative for a signal), ``None`` if it could not be reaped.
        """
        if self.proc is None:
            return None
        self.close()
        pid = self.proc.pid
        self._signal(signal.SIGHUP, signal.SIGCONT)
        loop = asyncio.get_running_loop()
        deadline, killed = loop.time() + grace, False
        while not self._poll():
            if loop.time() >= deadline:
                if killed:
                    log.warning("shell pid %d survived SIGKILL for 5 s; giving up on it", pid)
                    return None
                log.info("shell pid %d ignored SIGHUP; sending SIGKILL", pid)
                self._signal(signal.SIGKILL)
                deadline, killed = loop.time() + 5.0, True
            await asyncio.sleep(REAP_POLL_SECONDS)
        log.info("shell pid %d ended", pid)
        return self.returncode

    def kill(self) -> None:
        """Close the pty and SIGHUP/SIGCONT/SIGKILL the shell's process group at once (no waiting)."""
        if self.proc is None:
            return
        self.close()
        self._signal(signal.SIGHUP, signal.SIGCONT, signal.SIGKILL)
        self._poll()

    def close(self) -> None:
        """Stop watching and close the pty (idempotent); the process is left alone."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        self._set_reading(False)
        if self._writing:
            loop.remove_writer(self._fd)
            self._writing = False
        self._close_pidfd()
        if self.proc is not None and not self.proc.closed:
            # Close through ptyprocess' file object (owns the fd) and mark it closed so its
            # __del__ never runs its blocking close()/terminate().
            with contextlib.suppress(OSError):
                self.proc.fileobj.close()
            self.proc.fd = -1
            self.proc.closed = True
        self._fd = -1

    def _close_pidfd(self) -> None:
        if self._pidfd >= 0:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = -1

    async def wait(self, timeout: float = 5.0) -> int | None:
        """The exit code of an exited shell (reaping it); ``None`` if unknown within *timeout*."""
        if self.proc is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._poll():
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(REAP_POLL_SECONDS)
        return self.returncode

    def _poll(self) -> bool:
        """True once the shell has been reaped (or is not our child any more)."""
        if self._reaped or self.proc is None:
            return True
        try:
            done, status = os.waitpid(self.proc.pid, os.WNOHANG)
        except ChildProcessError:
            self._reaped = True
            return True
        if done != self.proc.pid:
            return False
        self._reaped, self.returncode = True, os.waitstatus_to_exitcode(status)
        return True

    def _signal(self, *signals: signal.Signals) -> None:
        """Signal the shell's process group (its session: ptyprocess made it the leader)."""
        assert self.proc is not None
        pid = self.proc.pid
        for sig in signals:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                if not self._reaped:  # a reaped pid may belong to someone else by now
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
            except PermissionError as exc:
                log.warning("cannot signal process group %d: %s", pid, exc)

    # -- flow control -------------------------------------------------------------------------

    def pause(self, reason: str) -> None:
        self._pause_reasons.add(reason)
        self._set_reading(False)

    def resume(self, reason: str) -> None:
        self._pause_reasons.discard(reason)
        if not self._pause_reasons:
            self._set_reading(True)

    @property
    def paused(self) -> bool:
        return bool(self._pause_reasons)

    def _set_reading(self, on: bool) -> None:
        if self._fd < 0 or (on and (self._closed or self._exit_reported or self._pause_reasons)):
            return
        if on and not self._reading:
            asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
            self._reading = True
        elif not on and self._reading:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._reading = False

    # -- pty I/O ------------------------------------------------------------------------------

    def _read_once(self) -> bytes | None:
        """Available bytes, ``b""`` if none right now, ``None`` at EOF."""
        try:
            data = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the shell and everything on the pty are gone
                log.warning("reading the pty of pid %s failed: %s", self.pid, exc)
            return None
        return data or None

    def _on_readable(self) -> None:
        data = self._read_once()
        if data is None:
            self._report_exit()
        elif data:
            self._on_output(data)

    def _on_process_exit(self) -> None:
        # The shell is gone: forward what is still buffered in the pty, then report.
        drained = 0
        while self._fd >= 0 and drained < EXIT_DRAIN_LIMIT:
            data = self._read_once()
            if not data:
                break
            drained += len(data)
            self._on_output(data)
        self._report_exit()

    def _report_exit(self) -> None:
        if self._exit_reported:
            return
        self._exit_reported = True
        self._set_reading(False)
        self._close_pidfd()
        self._on_exit()

    def write(self, data: bytes) -> None:
        """Queue keystrokes for the shell (dropped with a warning past a 1 MiB backlog)."""
        if self._fd < 0 or not data:
            return
        if len(self._pending) + len(data) > MAX_PENDING_INPUT:
            log.warning("shell pid %s is not reading its input; dropping %d bytes", self.pid, len(data))
            return
        self._pending += data
        self._flush()

    def _flush(self) -> None:
        while self._pending and self._fd >= 0:
            try:
                n = os.write(self._fd, self._pending)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("writing to the pty of pid %s failed: %s", self.pid, exc)
                self._pending.clear()
                break
            del self._pending[:n]
        loop = asyncio.get_running_loop()
        if self._pending and not self._writing and self._fd >= 0:
            loop.add_writer(self._fd, self._flush)
            self._writing = True
        elif not self._pending and self._writing:
            loop.remove_writer(self._fd)
            self._writing = False

    def resize(self, rows: int, columns: int) -> None:
        self.size = (rows, columns)
        if self.proc is None or self._fd < 0:
            return
        try:
            self.proc.setwinsize(rows, columns)
        except OSError as exc:
            log.warning("resizing the pty of pid %s failed: %s", self.pid, exc)


class RestartBackoff:
    """Delay before respawning: none after a shell that lived, doubling (0.4 s .. 5 s) while each dies within 1 s."""

    def __init__(self, quick: float = 1.0, base: float = 0.2, cap: float = 5.0) -> None:
        self.quick, self.base, self.cap = quick, base, cap
        self.quick_deaths = 0

    def next_delay(self, lived: float) -> float:
        self.quick_deaths = self.quick_deaths + 1 if lived < self.quick else 0
        return min(self.base * (2**self.quick_deaths), self.cap) if self.quick_deaths else 0.0
