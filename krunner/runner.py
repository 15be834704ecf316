"""The runner: one runtime, its batch steps, its query engine, input, PTY and services.

Nothing here knows about sockets: records go out through the :class:`Outbox`,
ops come in through :mod:`krunner.dispatcher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import time
from pathlib import Path

import zmq.asyncio

from .container_env import ContainerPaths, build_child_env, task_log_path
from .contract import PTY_IN_PORT, PTY_OUT_PORT
from .jobs import JobRunner
from .proc import terminate_started
from .protocol import EXIT_NOTHING_TO_RUN, Op, Record
from .runtimes.base import RuntimeContext, resolve_runtime_path
from .runtimes.languages import Language, QueryEngine
from .runtimes.registry import engine_class
from .services.inference import ModelServices
from .services.manager import ServiceManager
from .tasklog import TaskLog
from .terminal import Terminal
from .transport import Outbox
from .user_input import InputSocketServer, RunnerInputBroker

#: SIGTERM → SIGKILL grace for leftover processes at shutdown (the runner exits within 2 s)
SHUTDOWN_GRACE_SECONDS = 1.0

log = logging.getLogger("krunner.runner")

BOOTSTRAP_TIMEOUT = float(os.environ.get("KRUNNER_BOOTSTRAP_TIMEOUT", "300"))


class Runner:
    def __init__(
        self,
        language: Language,
        runtime_path: str | None,
        *,
        outbox: Outbox,
        zmq_context: zmq.asyncio.Context,
        paths: ContainerPaths | None = None,
        pty_ports: tuple[int, int] = (PTY_IN_PORT, PTY_OUT_PORT),
        intrinsic_ports: dict[str, int] | None = None,
    ) -> None:
        self.pty_ports = pty_ports
        self.language = language
        self.paths = paths or ContainerPaths()
        self.outbox = outbox
        self.zmq_context = zmq_context
        self.started_at = time.monotonic()
        self.env = build_child_env(self.paths)
        self.runtime_path = resolve_runtime_path(language, runtime_path, self.env["PATH"])
        self.jobs = JobRunner(outbox, str(self.paths.work_dir))
        engine_cls = engine_class(language)
        self.broker = RunnerInputBroker(outbox) if engine_cls.supports_input else None
        self.ctx = RuntimeContext(
            language=language,
            runtime_path=self.runtime_path,
            paths=self.paths,
            env=self.env,
            outbox=outbox,
            jobs=self.jobs,
            broker=self.broker,
        )
        self.engine = engine_cls(self.ctx)
        if self.broker is not None:
            self.broker.before_prompt = self.engine.drain
        self.input_server = InputSocketServer(self.paths.input_socket, self.broker)
        self.services = ServiceManager(
            self.paths.service_defs_dir,
            env=self.env,
            paths=self.paths,
            runtime_path=self.runtime_path,
            intrinsic_ports=intrinsic_ports,
        )
        self.models = ModelServices(self.services.supervisor, self.services.launcher, self.services.add_definition,
                                    outbox.send)
        self._background: set[asyncio.Task[None]] = set()
        self.terminal: Terminal | None = None
        self.tasklog = TaskLog(task_log_path(self.paths, os.environ.get("BACKENDAI_KERNEL_ID")))
        self.ready = asyncio.Event()  # set when serial ops may run
        #: exit code of the last build step, until an exec step consumes it
        self.last_build_exit: int | None = None

    # -- init / shutdown ---------------------------------------------------------------------

    async def init(self) -> None:
        """Init steps, each guarded: a failing step is logged and the runner still serves."""
        self._check_workdir_owner()
        self.services.load()
        for name, step in (
            ("input socket", self.input_server.start),
            ("query engine", self.engine.start),
            ("terminal", self._start_terminal),
        ):
            try:
                await step()
            except Exception as exc:
                log.error("init: %s failed: %s", name, exc)
        intrinsic = asyncio.get_running_loop().create_task(self.services.start_intrinsic())
        self._background.add(intrinsic)
        intrinsic.add_done_callback(self._background.discard)
        await self._run_bootstrap()
        self.ready.set()
        log.info("runner ready: runtime %s (%s)", self.language.name, self.runtime_path)

    def _check_workdir_owner(self) -> None:
        with contextlib.suppress(OSError):
            owner = self.paths.work_dir.stat().st_uid
            if owner != os.getuid():
                log.warning("%s is owned by uid %d, the runner runs as uid %d", self.paths.work_dir, owner, os.getuid())

    async def _start_terminal(self) -> None:
        if not self.language.pty:
            return
        self.terminal = Terminal(
            self.zmq_context,
            [self.runtime_path],
            env=self.env,
            cwd=str(self.paths.work_dir),
            in_port=self.pty_ports[0],
            out_port=self.pty_ports[1],
        )
        await self.terminal.start()

    async def _run_bootstrap(self) -> None:
        script = self.paths.bootstrap_script
        if not script.is_file():
            return
        log.info("running %s (timeout %.0f s)", script, BOOTSTRAP_TIMEOUT)
        try:
            code = await asyncio.wait_for(
                self.jobs.run(["/bin/sh", str(script)], self.env, tasklog=self.tasklog), BOOTSTRAP_TIMEOUT
            )
            log.info("bootstrap.sh finished with exit code %d", code)
        except asyncio.TimeoutError:
            log.error("bootstrap.sh did not finish within %.0f s and was stopped", BOOTSTRAP_TIMEOUT)

    async def shutdown(self) -> None:
        if self.broker is not None:
            self.broker.cancel()
        # every group the runner started gets SIGTERM at once, beside the orderly steps (a background
        # child a batch job left behind has no other owner), so the whole shutdown takes one grace period
        steps = [self.jobs.kill(), self.engine.shutdown(), self._stop_services(), self.input_server.close(),
                 terminate_started(grace=SHUTDOWN_GRACE_SECONDS)]
        if self.terminal is not None:
            steps.append(self.terminal.shutdown())
        results = await asyncio.gather(*steps, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("shutdown step failed: %s", result)
        if isinstance(results[4], int) and results[4]:
            log.info("shutdown: %d process group(s) ignored SIGTERM and were killed", results[4])
        await asyncio.to_thread(self.tasklog.close)

    async def _stop_services(self) -> None:
        await self.models.stop_all()  # their health checks first, then every supervised process
        await self.services.stop_all()

    # -- serial ops --------------------------------------------------------------------------

    async def run_serial(self, op: Op, payload: bytes) -> int:
        await self.ready.wait()
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.outbox.send(Record.STDERR, f"[krunner] {op.value}: payload is not valid UTF-8 ({exc})\n".encode())
            return EXIT_NOTHING_TO_RUN
        if op is Op.CODE:
            return await self.query(text)
        return await self.batch_step(op, text)

    async def query(self, code: str) -> int:
        if self.terminal is not None and code.lstrip().startswith("%"):
            return self.terminal.handle_command(code, self.outbox)
        return await self.engine.query(code)

    def _batch_env(self, op: Op) -> dict[str, str]:
        env = self.engine.batch_env(self.env)
        if op is Op.EXEC:
            env["_BACKEND_BATCH_MODE"] = "1"
        return env

    async def batch_step(self, op: Op, command: str) -> int:
        if op is Op.EXEC and self.last_build_exit not in (None, 0):
            code, self.last_build_exit = self.last_build_exit, None
            self.jobs.report(Record.STDERR, f"[krunner] exec skipped: the preceding build failed (exit {code})\n")
            return EXIT_NOTHING_TO_RUN
        command = command.strip()
        if not command:
            code = 0
        elif command == "*":
            code = await self._heuristic(op)
        else:
            code = await self.jobs.run(["/bin/sh", "-c", command], self._batch_env(op), tasklog=self.tasklog)
        if op is Op.BUILD:
            self.last_build_exit = code
        return code

    async def _heuristic(self, op: Op) -> int:
        """The ``*`` command of a batch step, from the language table."""
        lang = self.language
        if op is Op.CLEAN:
            return 0
        if lang.query_engine is QueryEngine.NONE and not lang.build and not lang.exec:
            self.jobs.report(Record.STDERR, f"[krunner] the '{lang.name}' runtime has no default {op.value} command\n")
            return 0
        rules = lang.build if op is Op.BUILD else lang.exec
        cwd = Path(self.paths.work_dir)
        commands = []
        if op is Op.BUILD and (cwd / "Makefile").exists():
            commands.append("make")
        commands += [r.command for r in rules if (cwd / r.when).exists()]
        if not commands:
            if op is Op.BUILD and not lang.build_required:
                if rules:
                    wanted = ", ".join(r.when for r in rules)
                    self.jobs.report(Record.STDERR, f"[krunner] nothing to build (no {wanted})\n", self.tasklog)
                return 0
            wanted = ", ".join(r.when for r in rules) or "nothing"
            self.jobs.report(
                Record.STDERR,
                f"[krunner] nothing to {op.value}: none of {wanted} found in {cwd}\n",
                self.tasklog,
            )
            return EXIT_NOTHING_TO_RUN
        shell = commands[0].format(runtime=shlex.quote(self.runtime_path))
        return await self.jobs.run(["/bin/sh", "-c", shell], self._batch_env(op), tasklog=self.tasklog)

    # -- inline ops --------------------------------------------------------------------------

    def feed_input(self, text: str) -> None:
        if self.broker is None:
            log.info("dropping input: the '%s' runtime takes no input", self.language.name)
            return
        self.broker.feed(text)

    def interrupt(self) -> None:
        if self.broker is not None:
            self.broker.cancel()
        if not self.engine.interrupt():
            log.info("interrupt: nothing is running")

    async def complete(self, code: str, cursor: int | None) -> list[str]:
        return await self.engine.complete(code, cursor)
