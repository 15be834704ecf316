"""Inference (model) services: ``start-model-service`` and health checks (spec §8).

Differences from upstream, wire format unchanged:

* the reply comes within the agent's own wait (``max_retries × max_wait_time + 10``
  s with health checks, else 10 s) and says whether the port opened: ``started``
  once it is open, or if the process is alive but its port is not open when that
  wait is about to run out (health reporting takes over), never before the agent
  gives up on its own timeout (RE-26);
* a process that dies before its port opens is reported with the real reason;
* health probes are plain asyncio HTTP requests with a timeout, any status
  equal to ``expected_status_code`` is healthy (not only 2xx), and every
  failure kind counts — the loop never dies silently.

Semantics as upstream (26.x, see docs/model-services.md): the config is upstream's
``ModelConfig`` (:mod:`.model_definition`); health checks run only when ``health_check.enable``
is true (else the model is reported healthy once started, like upstream's runner);
``initial_delay`` is a grace period — probing starts at once, and a model that has never
passed is reported unhealthy only when the grace period is over and ``max_retries``
consecutive probes failed; once it has passed, ``max_retries`` consecutive failures report it
unhealthy. A missing ``start_command`` (the agent fills in the image's ``Cmd``) fails with a
clear reason; a leftover ``{model_path}`` is substituted (the manager normally has done it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from ..protocol import (
    ModelServiceResult,
    ModelServiceStatus,
    Record,
    StartServiceRequest,
    encode_json,
    validation_message,
)
from . import model_definition as md
from .launcher import Launcher
from .service_def import ServiceDefinition
from .supervisor import StartFailed, Supervisor

log = logging.getLogger("krunner.services.inference")

REPLY_MARGIN = 2.0


#: the model-definition format (upstream's defaults and spellings) lives in model_definition.py
HealthCheck = md.HealthCheck
ModelServiceSpec = md.ModelService
ModelConfig = md.ModelConfig


def agent_wait(spec: ModelServiceSpec) -> float:
    """How long the agent waits for ``model-service-result`` (spec §2.5.5)."""
    hc = spec.health_check
    if hc is not None and hc.enable:
        return hc.max_retries * hc.max_wait_time + 10
    return 10.0


async def http_status(port: int, path: str, timeout: float) -> int:
    """Status code of ``GET http://127.0.0.1:<port><path>`` (raises OSError/TimeoutError)."""

    async def probe() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            line = await reader.readline()
            parts = line.decode("latin-1").split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise OSError(f"not an HTTP response: {line[:40]!r}")
            return int(parts[1])
        finally:
            writer.close()

    return await asyncio.wait_for(probe(), timeout)


class ModelServices:
    """The agent's ``start-model-service``: a peer of the service-port manager, sharing its supervisor
    (one process table, one exclusion per name) and launcher."""

    def __init__(
        self,
        supervisor: Supervisor | None,
        launcher: Launcher | None,
        register: Callable[[str, ServiceDefinition], None],
        send: Callable[[Record, bytes], None],
    ) -> None:
        self.supervisor = supervisor
        self.launcher = launcher
        self.register = register  # makes the model's service visible to get-apps / shutdown-service
        self.send = send
        self.health_tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, raw: dict) -> ModelServiceResult:
        try:
            config = ModelConfig.model_validate(raw)
        except ValidationError as exc:
            return ModelServiceResult(status="failed", error=f"bad model config: {validation_message(exc)}")
        spec = config.service
        if spec is None:
            return ModelServiceResult(status="failed", error=f"model {config.name}: service info not provided")
        if not Path(config.model_path).is_dir():
            return ModelServiceResult(status="failed", error=f"the model directory does not exist: {config.model_path}")
        if not spec.start_command:
            return ModelServiceResult(
                status="failed",
                error=f"model {config.name}: no start_command (the agent uses the image's Cmd; this image has none)",
            )
        name = f"{config.name}-{spec.port}"
        budget = max(1.0, agent_wait(spec) - REPLY_MARGIN)
        try:
            definition = ServiceDefinition(
                command=spec.start_command.replace("{model_path}", config.model_path),
                shell=spec.shell or None,
                prestart_actions=[a.model_dump() for a in spec.pre_start_actions],
                launch_timeout=budget,
            )
        except ValidationError as exc:
            return ModelServiceResult(status="failed", error=f"bad model service: {validation_message(exc)}")
        self.register(name, definition)
        request = StartServiceRequest(name=name, port=spec.port, ports=[spec.port], protocol="http")
        t0 = time.monotonic()
        result = await self._start_within_budget(name, definition, request, config.model_path)
        log.info("model service %s: %s after %.1f s", name, result.status, time.monotonic() - t0)
        if result.status != "failed":
            self._start_health(config.name, spec)
        return result

    async def _start_within_budget(
        self, name: str, definition: ServiceDefinition, request: StartServiceRequest, cwd: str
    ) -> ModelServiceResult:
        assert self.supervisor is not None and self.launcher is not None
        async with self.supervisor.exclusive(name):
            if self.supervisor.is_running(name):
                return ModelServiceResult(status="running")
            try:
                launch = await self.launcher.build(name, definition, request, cwd=cwd)
                # alive but not listening yet when the agent's wait runs out: report "started"
                await self.supervisor.start(name, launch, request.ports, keep_on_timeout=True)
            except StartFailed as exc:
                return ModelServiceResult(status="failed", error=str(exc))
            except Exception as exc:  # template/action/argument errors: report them, not a generic text
                return ModelServiceResult(status="failed", error=str(exc))
        return ModelServiceResult(status="started")

    def _start_health(self, model_name: str, spec: ModelServiceSpec) -> None:
        hc = spec.health_check
        if hc is None or not hc.enable:
            self._report(model_name, True)
            return
        old = self.health_tasks.pop(model_name, None)
        if old is not None:
            old.cancel()
        self.health_tasks[model_name] = asyncio.get_running_loop().create_task(
            self._health_loop(model_name, spec.port, hc)
        )

    def _report(self, model_name: str, healthy: bool) -> None:
        self.send(Record.MODEL_SERVICE_STATUS, encode_json(ModelServiceStatus(model_name=model_name, is_healthy=healthy)))

    async def _health_loop(self, model_name: str, port: int, hc: HealthCheck) -> None:
        """Probe from the start; ``initial_delay`` only bounds how long a model that never
        passed may keep failing before it is reported unhealthy (upstream's grace period)."""
        begun = time.monotonic()
        healthy: bool | None = None
        passed_once = False
        failures = 0
        while True:
            started = time.monotonic()
            try:
                status = await http_status(port, hc.path, hc.max_wait_time)
                ok = status == hc.expected_status_code
                reason = f"HTTP {status}"
            except (OSError, asyncio.TimeoutError) as exc:
                ok, reason = False, type(exc).__name__
            if ok:
                failures = 0
                passed_once = True
                if healthy is not True:
                    healthy = True
                    self._report(model_name, True)
            else:
                failures += 1
                log.debug("health check of %s failed (%s), %d in a row", model_name, reason, failures)
                in_grace = not passed_once and time.monotonic() - begun < hc.initial_delay
                if failures >= max(hc.max_retries, 1) and not in_grace and healthy is not False:
                    healthy = False
                    self._report(model_name, False)
            await asyncio.sleep(max(0.0, hc.interval - (time.monotonic() - started)))

    async def stop_all(self) -> None:
        for task in self.health_tasks.values():
            task.cancel()
        for task in list(self.health_tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.health_tasks.clear()
