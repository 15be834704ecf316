"""Building the command of a service from its definition and a start request.

Checks the client's arguments and environment against the definition, runs the prestart
actions, renders the templates and resolves the shell. Used for service ports
(:mod:`.manager`) and model services (:mod:`.inference`) alike.
"""

from __future__ import annotations

import shlex
import shutil
from typing import Any

from ..container_env import ContainerPaths
from ..protocol import StartServiceRequest
from . import template
from .actions import ActionContext, run_prestart
from .launch import LaunchSpec
from .service_def import ServiceDefinition


class ServiceRequestError(ValueError):
    """A start request the definition does not allow (or that names no service)."""


class Launcher:
    def __init__(self, env: dict[str, str], paths: ContainerPaths, runtime_path: str) -> None:
        self.env = env
        self.paths = paths
        self.runtime_path = runtime_path

    async def build(
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
