"""One shell on a pty, driven from the event loop without blocking.

The pty master is non-blocking and watched with ``add_reader``; keystrokes are
written with ``os.write`` and any remainder waits for ``add_writer``.  Reading
can be paused for several independent reasons (the client's PAUSE command,
WebSocket back-pressure) and resumes only when all of them are lifted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
from collections.abc import Callable, Sequence

from ptyprocess import PtyProcess

log = logging.getLogger("krunner.webterm.session")

READ_CHUNK = 64 * 1024
MAX_PENDING_INPUT = 1 << 20
EXIT_DRAIN_LIMIT = 1 << 20
KILL_GRACE_SECONDS = 1.0
REAP_POLL_SECONDS = 0.05


class ShellSession:
    """A shell process in its own session (``setsid``) with the pty as controlling tty."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: str,
        columns: int,
        rows: int,
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

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the shell (raises OSError/ptyprocess errors if it cannot be started)."""
        self.proc = PtyProcess.spawn(self.argv, cwd=self.cwd, env=self.env, dimensions=self.size)
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

    async def terminate(self, grace: float = KILL_GRACE_SECONDS) -> None:
        """Close the pty, SIGHUP the shell's process group, SIGKILL after *grace*, and reap."""
        if self._closed or self.proc is None:
            return
        self._closed = True
        self._detach()
        pid = self.proc.pid
        _signal_group(pid, signal.SIGHUP, signal.SIGCONT)
        loop = asyncio.get_running_loop()
        deadline, killed = loop.time() + grace, False
        while not _reap(pid):
            if loop.time() >= deadline:
                if killed:
                    log.warning("shell pid %d survived SIGKILL for 5 s; giving up on it", pid)
                    return
                log.info("shell pid %d ignored SIGHUP; sending SIGKILL", pid)
                _signal_group(pid, signal.SIGKILL)
                deadline, killed = loop.time() + 5.0, True
            await asyncio.sleep(REAP_POLL_SECONDS)
        log.info("shell pid %d ended", pid)

    def _detach(self) -> None:
        loop = asyncio.get_running_loop()
        self._set_reading(False)
        if self._writing:
            loop.remove_writer(self._fd)
            self._writing = False
        if self._pidfd >= 0:
            loop.remove_reader(self._pidfd)
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = -1
        if self.proc is not None and not self.proc.closed:
            # Close through ptyprocess' file object (owns the fd) and mark it closed so its
            # __del__ never runs its blocking close()/terminate().
            with contextlib.suppress(OSError):
                self.proc.fileobj.close()
            self.proc.fd = -1
            self.proc.closed = True
        self._fd = -1

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
        if self._fd < 0 or (on and (self._closed or self._exit_reported)):
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
            if exc.errno != errno.EIO:
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
        if self._pidfd >= 0:
            asyncio.get_running_loop().remove_reader(self._pidfd)
        self._on_exit()

    def write(self, data: bytes) -> None:
        """Queue keystrokes for the shell (dropped with a warning past 1 MiB backlog)."""
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

    def resize(self, columns: int, rows: int) -> None:
        self.size = (rows, columns)
        if self.proc is None or self._fd < 0:
            return
        try:
            self.proc.setwinsize(rows, columns)
        except OSError as exc:
            log.warning("resizing the pty of pid %s failed: %s", self.pid, exc)


def _signal_group(pid: int, *signals: signal.Signals) -> None:
    for sig in signals:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        except PermissionError as exc:
            log.warning("cannot signal process group %d: %s", pid, exc)


def _reap(pid: int) -> bool:
    """True once *pid* has been reaped (or is not our child any more)."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid
