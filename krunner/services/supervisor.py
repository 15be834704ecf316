"""Service processes: spawn, readiness, exit watching, stop.

Ready means the port accepts TCP connections *while the process is alive*.
The port probe races the process exit and the launch timeout, so a service
that dies at once is reported at once, with its exit code and last output.
Each service runs in its own process group; its output goes to
``/home/work/.logs/services/<name>.log`` and to the container console.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from ..proc import ChildProcess
from ..tasklog import TaskLog
from .launch import LaunchSpec

log = logging.getLogger("krunner.services")

PROBE_INTERVAL = 0.1
STOP_GRACE = 2.0
TAIL_LINES = 10


class StartFailed(RuntimeError):
    pass


class OutputTail:
    """The last lines a service printed (for failure reports), plus file and console copies."""

    def __init__(self, logfile: TaskLog) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._partial = b""
        self._logfile = logfile

    def feed(self, data: bytes) -> None:
        self._logfile.write(data)
        with contextlib.suppress(OSError):
            os.write(2, data)  # the container console (the runner's stderr)
        chunk = self._partial + data
        *complete, self._partial = chunk.split(b"\n")
        for line in complete[-TAIL_LINES:]:
            self._lines.append(line.decode("utf-8", errors="replace"))
        self._partial = self._partial[-4096:]

    def text(self) -> str:
        lines = list(self._lines)
        if self._partial:
            lines.append(self._partial.decode("utf-8", errors="replace"))
        return "\n".join(lines[-TAIL_LINES:])


@dataclass
class ServiceProcess:
    name: str
    child: ChildProcess
    tail: OutputTail
    logfile: TaskLog
    ports: list[int] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.child.returncode is None


async def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


class Supervisor:
    def __init__(self, base_env: dict[str, str], work_dir: Path) -> None:
        self.base_env = base_env
        self.work_dir = work_dir
        self.running: dict[str, ServiceProcess] = {}
        #: one lock per name while anybody holds or waits for it, with the number of those users:
        #: names come from the agent, so an entry lives only as long as it is used (a fuzzed or
        #: hostile name must not stay in memory for the life of the session)
        self._exclusion: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Held around a start or stop of *name*: a second start of the same service waits for the
        first and then finds it running; different services start concurrently."""
        lock, users = self._exclusion.get(name) or (asyncio.Lock(), 0)
        self._exclusion[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._exclusion[name]
            if users > 1:
                self._exclusion[name] = (lock, users - 1)
            else:
                del self._exclusion[name]

    @property
    def names_in_use(self) -> frozenset[str]:
        """The names a start or stop holds or waits for right now."""
        return frozenset(self._exclusion)

    def is_running(self, name: str) -> bool:
        proc = self.running.get(name)
        return proc is not None and proc.alive

    def log_path(self, name: str) -> Path:
        return self.work_dir / ".logs" / "services" / f"{name}.log"

    async def start(self, name: str, spec: LaunchSpec, ports: list[int], *, keep_on_timeout: bool = False) -> None:
        """Spawn and wait until ready; raises StartFailed with a user-facing reason."""
        env = dict(self.base_env)
        env.update(spec.env)
        logfile = TaskLog(self.log_path(name))
        tail = OutputTail(logfile)
        try:
            child = ChildProcess.spawn(
                spec.argv,
                env=env,
                cwd=spec.cwd or str(self.work_dir),
                stdout_sink=tail.feed,
                stderr_sink=tail.feed,
            )
        except FileNotFoundError:
            logfile.close(0)
            raise StartFailed(f"the executable file is not found: {spec.argv[0]}") from None
        except PermissionError:
            logfile.close(0)
            raise StartFailed(f"the target file is not executable: {spec.argv[0]}") from None
        except OSError as exc:
            logfile.close(0)
            raise StartFailed(f"cannot start {spec.argv[0]}: {exc}") from None
        proc = ServiceProcess(name, child, tail, logfile, ports)
        self.running[name] = proc
        asyncio.get_running_loop().create_task(self._watch(proc))
        log.info("service %s: started %s (pid %d)", name, spec.argv[0], child.pid)
        try:
            await self._wait_ready(proc, ports[0] if ports else None, spec.launch_timeout, keep_on_timeout)
        except BaseException:
            await self._terminate(proc)
            raise

    async def _wait_ready(self, proc: ServiceProcess, port: int | None, timeout: float, keep: bool = False) -> None:
        exited = asyncio.ensure_future(proc.child.wait_exit())
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            if port is None:  # nothing to probe: alive for a moment counts as started
                done, _ = await asyncio.wait({exited}, timeout=min(0.5, timeout))
                if not done:
                    return
            else:
                while True:
                    if exited.done():
                        break
                    if await port_open(port, timeout=min(1.0, max(0.05, deadline - asyncio.get_running_loop().time()))):
                        if not exited.done():
                            return
                        break
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        if keep:
                            log.info("service %s: port %d not open after %g s; still starting", proc.name, port, timeout)
                            return
                        raise StartFailed(
                            f"opening the service port timed out: {proc.name} (port {port} not open after {timeout:g} s)"
                        )
                    await asyncio.wait({exited}, timeout=min(PROBE_INTERVAL, remaining))
            code = exited.result()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.child.wait(output_grace=0.2), 1.0)
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            where = f" before opening port {port}" if port is not None else ""
            tail = proc.tail.text().strip()
            raise StartFailed(f"{proc.name} {how}{where}" + (f"; last output:\n{tail}" if tail else ""))
        finally:
            exited.cancel()

    async def _watch(self, proc: ServiceProcess) -> None:
        code = await proc.child.wait()
        log.info("service %s (pid %d) exited with %d", proc.name, proc.child.pid, code)
        if self.running.get(proc.name) is proc:  # a restarted service is not unregistered (RE-46)
            del self.running[proc.name]
        await asyncio.to_thread(proc.logfile.close)

    async def _terminate(self, proc: ServiceProcess) -> None:
        if proc.alive:
            await proc.child.terminate(signal.SIGTERM, grace=STOP_GRACE)
        if self.running.get(proc.name) is proc:
            del self.running[proc.name]

    async def stop(self, name: str) -> bool:
        proc = self.running.get(name)
        if proc is None:
            return False
        await self._terminate(proc)
        log.info("service %s stopped", name)
        return True

    async def stop_all(self) -> None:
        await asyncio.gather(*(self._terminate(p) for p in list(self.running.values())), return_exceptions=True)
