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
import collections
import logging
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..container import ContainerPaths
from ..contract import INTRINSIC_SERVICES, SSHD_PORT, TTYD_PORT
from ..protocol import AppInfo, AppsResult, ModelServiceResult, ServiceResult, StartServiceRequest
from . import template
from .actions import ActionContext, ActionFailed, run_prestart
from .launch import LaunchSpec
from .model import DefinitionError, ServiceDefinition, load_definition
from .supervisor import StartFailed, Supervisor

log = logging.getLogger("krunner.services")




class ServiceRequestError(ValueError):
    pass


class ServiceManager:
    def __init__(
        self,
        defs_dir: Path,
        *,
        env: dict[str, str] | None = None,
        paths: ContainerPaths | None = None,
        runtime_path: str = "",
        intrinsic_ports: dict[str, int] | None = None,
        notify: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.defs_dir = defs_dir
        self.paths = paths or ContainerPaths()
        self.env = dict(env or {})
        self.runtime_path = runtime_path
        self.intrinsic_ports = intrinsic_ports or {"sshd": SSHD_PORT, "ttyd": TTYD_PORT}
        self.notify = notify
        self.definitions: dict[str, ServiceDefinition] = {}
        self.broken: dict[str, str] = {}
        self.supervisor = Supervisor(self.env, self.paths.work_dir)
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._sshd_host_key: str | None = None
        self.models = None  # the model-service engine, attached by the runner

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
        async with self._locks[name]:
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
        async with self._locks[name]:
            if not await self.supervisor.stop(name):
                log.info("shutdown-service %r: not running", name)

    async def stop_all(self) -> None:
        if self.models is not None:
            await self.models.stop_all()
        await self.supervisor.stop_all()

    async def start_model(self, config: dict[str, Any]) -> ModelServiceResult:
        if self.models is None:
            return ModelServiceResult(status="failed", error="model services are not available")
        return await self.models.start(config)

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
        return await self.build_launch(name, definition, request)

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

    async def build_launch(
        self, name: str, definition: ServiceDefinition, request: StartServiceRequest, cwd: str | None = None
    ) -> LaunchSpec:
        options = request.options or {}
        arguments = request.arguments if request.arguments is not None else options.get("arguments") or {}
        envs = request.envs if request.envs is not None else options.get("envs") or {}
        if not isinstance(arguments, dict) or not isinstance(envs, dict):
            raise ServiceRequestError("options.arguments and options.envs must be objects")
        for arg in arguments:
            if arg not in definition.allowed_arguments:
                raise ServiceRequestError(f"argument {arg} is not allowed for service {name}")
        for key in envs:
            if key not in definition.allowed_envs:
                raise ServiceRequestError(f"environment variable {key} is not allowed for service {name}")

        ports = request.ports or ([request.port] if request.port else [])
        variables: dict[str, Any] = {"ports": ports, "runtime_path": self.runtime_path}
        ctx = ActionContext(variables, self.env, cwd or str(self.paths.work_dir), name)
        await run_prestart(definition.prestart_actions, ctx)

        def render(text: str) -> str:
            return template.render(text, variables)

        extra: list[str] = []
        merged: dict[str, Any] = {k: ("t", v) for k, v in definition.default_arguments.items()}
        merged.update({k: ("c", v) for k, v in arguments.items()})  # client values are taken literally
        for arg, (origin, value) in merged.items():
            extra.append(arg)
            values = [] if value is None else value if isinstance(value, list) else [value]
            extra += [render(str(v)) if origin == "t" else str(v) for v in values]

        command = definition.command
        if isinstance(command, list):
            argv = [render(part) for part in command] + extra
        else:
            rendered = render(command or "")
            if definition.shell is None or definition.shell == "":
                argv = shlex.split(rendered) + extra
            else:
                shell = self._resolve_shell(definition.shell)
                if extra:
                    rendered += " " + " ".join(shlex.quote(a) for a in extra)
                argv = [shell, "-c", rendered]
        env = {render(k): render(v) for k, v in definition.env.items()}
        env.update({str(k): str(v) for k, v in envs.items()})
        return LaunchSpec(argv=argv, env=env, cwd=cwd, launch_timeout=definition.launch_timeout)

    def _resolve_shell(self, shell: str) -> str:
        if shell == "auto":
            for candidate in ("bash", "sh"):
                found = shutil.which(candidate, path=self.env.get("PATH"))
                if found:
                    return found
            return "/bin/sh"
        return shell


def python_module_argv(module: str, *args: str) -> list[str]:
    """argv running a krunner module with the runner's own interpreter."""
    return [sys.executable, "-s", "-m", module, *args]
