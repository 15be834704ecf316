"""Inference images (``ai.backend.role=INFERENCE``): start each model service the way the agent does.

The manager resolves ``model-definition.yaml`` from the model folder and the agent sends one
``start-model-service`` per model (krunner-protocol spec §8). Here the definition is read from the
image's own ``ai.backend.model-path`` (a demo model the image ships) — an image without one gets
this check skipped with a note.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

import yaml

from ..model import CheckFailed, CheckSkipped
from ..session import SmokeSession, probe
from . import Check
from .services import http_status

DEFINITION_NAMES = ("model-definition.yaml", "model-definition.yml")
READ_PROBE = r"""
import json, os, sys
for name in sys.argv[2:]:
    path = os.path.join(sys.argv[1], name)
    if os.path.isfile(path):
        print(json.dumps({"path": path, "text": open(path, encoding="utf-8", errors="replace").read()}))
        break
else:
    print(json.dumps(None))
"""


def model_config(model: dict[str, Any]) -> dict[str, Any] | None:
    """What the agent sends for one model of the definition (None: the model has no service)."""
    service = dict(model.get("service") or {})
    command = service.pop("start_command", None) or service.pop("start-command", None) or service.pop("command", None)
    if not command:
        return None
    model_path = str(model.get("model_path", ""))
    text = shlex.join(str(a) for a in command) if isinstance(command, list) else str(command)
    service["start_command"] = text.replace("{model_path}", model_path)
    if "pre_start_actions" not in service and "prestart_actions" in service:
        service["pre_start_actions"] = service.pop("prestart_actions")
    return {"name": str(model.get("name", "model")), "model_path": model_path, "service": service}


def model_services(session: SmokeSession) -> str:
    labels = session.facts.labels
    if labels.get("ai.backend.role") != "INFERENCE":
        raise CheckSkipped("not an inference image (ai.backend.role is not INFERENCE)")
    model_path = labels.get("ai.backend.model-path", "/models")
    found = probe(session, READ_PROBE, model_path, *DEFINITION_NAMES)
    if found is None:
        raise CheckSkipped(f"no model-definition.yaml under {model_path} in the image (models come from a vfolder)")
    try:
        definition = yaml.safe_load(found["text"]) or {}
    except yaml.YAMLError as exc:
        raise CheckFailed(f"{found['path']} is not valid YAML: {exc}") from None
    configs = [c for c in (model_config(m) for m in definition.get("models") or []) if c is not None]
    if not configs:
        raise CheckFailed(f"{found['path']} defines no model with a service start_command")
    declared = {p for entry in session.facts.services for p in entry.ports}
    c = session.agent(timeout=180)
    done = []
    for config in configs:
        service = config["service"]
        port = int(service.get("port", 0))
        if port not in declared:
            raise CheckFailed(f"model {config['name']} serves port {port}, which ai.backend.service-ports does not declare")
        result = c.start_model_service(config)
        if result.status not in ("started", "running"):
            raise CheckFailed(f"start-model-service for {config['name']} answered {result.status}: {result.error}",
                              session.kernel.logs()[-3000:])
        health = service.get("health_check") or {}
        path = str(health.get("path", "/"))
        if health.get("enable", True) and health:
            budget = min(180.0, float(health.get("interval", 10)) * (int(health.get("max_retries", 10)) + 2) + 10)
            deadline = time.monotonic() + budget
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CheckFailed(f"model {config['name']} was not reported healthy within {budget:.0f} s",
                                      session.kernel.logs()[-3000:])
                _, payload = c.recv({"model-service-status"}, timeout=remaining)
                status = json.loads(payload)
                if status.get("model_name") == config["name"] and status.get("is_healthy"):
                    break
        expected = int(health.get("expected_status_code", 200))
        got = http_status(f"http://127.0.0.1:{session.kernel.host_port(port)}{path}", timeout=30)
        if got != expected:
            raise CheckFailed(f"GET {path} on model {config['name']} answered {got}, expected {expected}")
        done.append(f"{config['name']} on {port} healthy")
    return "; ".join(done)


CHECKS = [Check("inference.model-service", "model services (inference)", model_services)]
