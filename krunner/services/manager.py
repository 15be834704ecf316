"""Service ports as the agent sees them: get-apps, start-service, shutdown-service.

* every ``*.json`` in the service-defs directory is loaded and validated on
  its own; a broken file is logged and remembered, and ``start-service`` for it
  answers ``failed`` with the reason — the other services and the runner are
  unaffected;
* starts of different services run concurrently; a second start of the same
  service waits for the first and then answers ``running``;
* intrinsic services (``sshd``, ``ttyd``) start automatically when the image
  (or the krunner bundle) provides them.
"""

from __future__ import annotations

import asyncio
import logging
import reprlib
from pathlib import Path

from ..container_env import ContainerPaths
from ..contract import INTRINSIC_SERVICES, SSHD_PORT, TTYD_PORT
from ..protocol import (
    AppInfo,
    AppsResult,
    ServiceResult,
    StartServiceRequest,
)
from . import template
from .actions import ActionFailed
from .launch import LaunchSpec
from .launcher import Launcher, ServiceRequestError
from .service_def import DefinitionError, ServiceDefinition, load_definition
from .supervisor import StartFailed, Supervisor

log = logging.getLogger("krunner.services")




class ServiceManager:
    def __init__(
        self,
        defs_dir: Path,
        *,
        env: dict[str, str] | None = None,
        paths: ContainerPaths | None = None,
        runtime_path: str = "",
        intrinsic_ports: dict[str, int] | None = None,
    ) -> None:
        self.defs_dir = defs_dir
        self.paths = paths or ContainerPaths()
        self.env = dict(env or {})
        self.runtime_path = runtime_path
        self.intrinsic_ports = intrinsic_ports or {"sshd": SSHD_PORT, "ttyd": TTYD_PORT}
        self.definitions: dict[str, ServiceDefinition] = {}
        self.broken: dict[str, str] = {}
        self.supervisor = Supervisor(self.env, self.paths.work_dir)
        self.launcher = Launcher(self.env, self.paths, runtime_path)
        self._sshd_host_key: str | None = None

    # -- definitions -------------------------------------------------------------------------

    def load(self) -> None:
        if not self.defs_dir.is_dir():
            return
        try:
            files = sorted(p for p in self.defs_dir.iterdir() if p.suffix == ".json")
        except OSError as exc:
            log.error("cannot read the service definitions in %s: %s", self.defs_dir, exc)
            return
        for path in files:
            name = path.stem
            try:
                self.definitions[name] = load_definition(path)
            except DefinitionError as exc:
                self.broken[name] = exc.reason
                log.error("service definition %s is broken and will not start: %s", path, exc.reason)
        if self.definitions:
            log.info("service definitions: %s", ", ".join(sorted(self.definitions)))

    def add_definition(self, name: str, definition: ServiceDefinition) -> None:
        self.definitions[name] = definition
        self.broken.pop(name, None)

    def get_apps(self, name: str = "") -> AppsResult:
        names = [name] if name else sorted(self.definitions)
        data = []
        for n in names:
            d = self.definitions.get(n)
            if d is None:
                continue
            data.append(
                AppInfo(
                    name=n,
                    url_template=d.url_template or None,
                    allowed_arguments=d.allowed_arguments or None,
                    allowed_envs=d.allowed_envs or None,
                )
            )
        return AppsResult(data=data)

    # -- start / stop ------------------------------------------------------------------------

    async def start(self, request: StartServiceRequest) -> ServiceResult:
        name = request.name
        if request.protocol == "preopen":
            return ServiceResult(status="started")  # the user runs it; nothing to spawn
        if request.protocol == "pty":
            return ServiceResult(status="failed", error="not implemented yet")
        async with self.supervisor.exclusive(name):
            if self.supervisor.is_running(name):
                return ServiceResult(status="running")
            try:
                spec = await self._launch_spec(request)
                if spec is None:
                    return ServiceResult(status="started")  # noop
                ports = request.ports or ([request.port] if request.port else [])
                await self.supervisor.start(name, spec, ports)
            except (StartFailed, ServiceRequestError, ActionFailed, template.TemplateError) as exc:
                log.warning("service %s failed to start: %s", name, exc)
                return ServiceResult(status="failed", error=str(exc))
            return ServiceResult(status="started")

    async def shutdown(self, name: str) -> None:
        async with self.supervisor.exclusive(name):
            if not await self.supervisor.stop(name):
                log.info("shutdown-service %s: not running", reprlib.repr(name))

    async def stop_all(self) -> None:
        await self.supervisor.stop_all()

    async def start_intrinsic(self) -> None:
        """Start sshd and the web terminal if their programs exist (failures are only logged)."""

        async def one(name: str) -> None:
            port = self.intrinsic_ports.get(name)
            request = StartServiceRequest(name=name, port=port, ports=[port] if port else [], protocol="tcp")
            result = await self.start(request)
            if result.status == "failed":
                log.info("intrinsic service %s not started: %s", name, result.error)

        await asyncio.gather(*(one(n) for n in INTRINSIC_SERVICES if self._intrinsic_available(n)))

    # -- building the command ----------------------------------------------------------------

    def _intrinsic_available(self, name: str) -> bool:
        try:
            if name == "sshd":
                from .intrinsic_sshd import find_dropbear

                return find_dropbear() is not None
            from . import intrinsic_webterm

            return intrinsic_webterm.available()
        except Exception as exc:  # never let an intrinsic probe break init
            log.error("cannot check for intrinsic service %s: %s", name, exc)
            return False

    async def _launch_spec(self, request: StartServiceRequest) -> LaunchSpec | None:
        name = request.name
        if name in self.broken:
            raise ServiceRequestError(f"the service definition of {name} is broken: {self.broken[name]}")
        definition = self.definitions.get(name)
        if definition is None and name in INTRINSIC_SERVICES:
            return await self._intrinsic_spec(request)
        if definition is None:
            raise ServiceRequestError(f"unsupported service: {name}")
        if definition.noop:
            return None
        return await self.launcher.build(name, definition, request)

    async def _intrinsic_spec(self, request: StartServiceRequest) -> LaunchSpec:
        port = request.port or self.intrinsic_ports.get(request.name)
        if port is None:
            raise ServiceRequestError(f"no port for {request.name}")
        if request.name == "sshd":
            from .intrinsic_sshd import find_dropbear, prepare_sshd, sshd_launch

            tools = find_dropbear()
            if tools is None:
                raise ServiceRequestError("sshd is not available: no dropbear under /opt/kernel")
            if self._sshd_host_key is None:
                self._sshd_host_key = await prepare_sshd(self.paths, self.env, tools)
            return sshd_launch(tools, port, self._sshd_host_key)
        from . import intrinsic_webterm

        spec = intrinsic_webterm.launch(port)
        if spec is None:
            raise ServiceRequestError("the web terminal is not available in this image")
        return spec
