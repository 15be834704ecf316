"""Runs one user process at a time for batch steps and snippet queries.

The process streams its stdout/stderr as records (and into the task log), can
be interrupted as a whole process group, and is always reaped.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping, Sequence

from .proc import ChildProcess
from .protocol import EXIT_INTERNAL_ERROR, EXIT_NOTHING_TO_RUN, Record
from .tasklog import TaskLog
from .transport import Outbox

log = logging.getLogger("krunner.jobs")


class JobRunner:
    def __init__(self, outbox: Outbox, cwd: str) -> None:
        self.outbox = outbox
        self.cwd = cwd
        self.current: ChildProcess | None = None
        self._signal_tasks: set[asyncio.Task[None]] = set()

    def _sink(self, record: Record, tasklog: TaskLog | None):
        send = self.outbox.send
        if tasklog is None:
            return lambda data: send(record, data)

        def sink(data: bytes) -> None:
            send(record, data)
            tasklog.write(data)

        return sink

    def report(self, record: Record, text: str, tasklog: TaskLog | None = None) -> None:
        data = text.encode("utf-8")
        self.outbox.send(record, data)
        if tasklog is not None:
            tasklog.write(data)

    async def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        tasklog: TaskLog | None = None,
        cwd: str | None = None,
    ) -> int:
        """Run ``argv`` to completion and return its exit code (negative = signal)."""
        try:
            child = ChildProcess.spawn(
                argv,
                env=env,
                cwd=cwd or self.cwd,
                stdout_sink=self._sink(Record.STDOUT, tasklog),
                stderr_sink=self._sink(Record.STDERR, tasklog),
                gate=self.outbox.gate,  # the job blocks on its pipes while the agent does not take output
            )
        except FileNotFoundError:
            self.report(Record.STDERR, f"{argv[0]}: command not found\n", tasklog)
            return EXIT_NOTHING_TO_RUN
        except OSError as exc:
            self.report(Record.STDERR, f"[krunner] cannot start {argv[0]}: {exc}\n", tasklog)
            return EXIT_INTERNAL_ERROR
        self.current = child
        try:
            return await child.wait()
        except asyncio.CancelledError:
            await child.terminate(signal.SIGTERM, grace=1.0)
            raise
        finally:
            self.current = None
            if tasklog is not None:
                await tasklog.settled()

    def drain(self) -> None:
        if self.current is not None:
            self.current.drain()

    def interrupt(self) -> bool:
        """SIGINT the running job's process group, escalating if it does not stop."""
        child = self.current
        if child is None:
            return False
        task = asyncio.get_running_loop().create_task(child.terminate(signal.SIGINT))
        self._signal_tasks.add(task)
        task.add_done_callback(self._signal_tasks.discard)
        return True

    async def kill(self) -> None:
        child = self.current
        if child is not None:
            await child.terminate(signal.SIGTERM, grace=1.0)
