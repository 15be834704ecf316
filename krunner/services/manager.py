"""The runner's entry point into service ports (get-apps, start/shutdown, model services).

This is the dispatch surface the runner calls; the service-definition engine
itself (templating, prestart actions, supervision) plugs in behind it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..protocol import AppInfo, AppsResult, ModelServiceResult, ServiceResult, StartServiceRequest

log = logging.getLogger("krunner.services")


class ServiceManager:
    def __init__(self, defs_dir: Path) -> None:
        self.defs_dir = defs_dir
        self.apps: dict[str, AppInfo] = {}

    def load(self) -> None:
        """Read ``*.json`` service definitions; a broken file is reported and skipped."""
        if not self.defs_dir.is_dir():
            return
        for path in sorted(self.defs_dir.glob("*.json")):
            try:
                raw = json.loads(path.read_text())
                if not isinstance(raw, dict):
                    raise ValueError("expected a JSON object")
                self.apps[path.stem] = AppInfo(
                    name=path.stem,
                    url_template=raw.get("url_template"),
                    allowed_arguments=raw.get("allowed_arguments"),
                    allowed_envs=raw.get("allowed_envs"),
                )
            except (OSError, ValueError) as exc:
                log.error("%s: skipping broken service definition: %s", path, exc)

    def get_apps(self, name: str = "") -> AppsResult:
        if name:
            app = self.apps.get(name)
            return AppsResult(data=[app] if app else [])
        return AppsResult(data=list(self.apps.values()))

    async def start(self, request: StartServiceRequest) -> ServiceResult:
        return ServiceResult(status="failed", error=f"service {request.name!r}: no service engine in this runner build")

    async def shutdown(self, name: str) -> None:
        log.info("shutdown-service %r: nothing running", name)

    async def start_model(self, config: dict) -> ModelServiceResult:
        return ModelServiceResult(status="failed", error="model services are not supported by this runner build")

    async def stop_all(self) -> None:
        return None
