"""Model services: start each model the way Backend.AI 26.x does, and check that it answers.

Where the model comes from:

* ``bai-imagekit test IMAGE --model DIR [--runtime-variant NAME]``: the folder *DIR*, mounted
  read-only at ``/models`` (the manager's default model mount destination);
* otherwise a model folder the image ships itself at ``/models`` (or at ``ai.backend.model-path``
  on an ``INFERENCE`` image) — an image without one gets this check skipped with a note.

What happens, in the upstream order (docs/model-services.md): the manager merges the runtime
variant's default model definition, then (``custom`` only) the folder's ``model-definition.yaml``,
substitutes ``{model_path}`` and validates the result; the agent refuses the session when a model
port is 2000/2001 or overlaps sshd/ttyd or a port the image labels (``PortConflictError``), fills a
missing ``start_command`` from the image's ``Cmd`` (skipping the model without one) and sends one
``start-model-service`` per model. Health is then awaited only when ``health_check.enable`` is
true; the service must answer HTTP on its port inside the container (the expected status of the
health check when there is one).
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from krunner.contract import MODEL_PATH_LABEL, ROLE_LABEL
from krunner.services import model_definition as md

from ..model import CheckFailed, CheckSkipped
from ..session import SmokeSession, probe
from . import Check

#: ``session.notes`` keys set by the runner for ``--model`` / ``--runtime-variant``
NOTE_DIR = "model:dir"
NOTE_VARIANT = "model:variant"

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
HTTP_PROBE = r"""
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
        print(json.dumps({"status": r.status, "body": r.read(300).decode("utf-8", "replace")}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": ""}))
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
"""


@dataclass(frozen=True)
class ModelUnderTest:
    """``--model DIR --runtime-variant NAME`` of ``bai-imagekit test``."""

    folder: Path
    variant: str = md.DEFAULT_VARIANT

    def mount(self) -> tuple[Path, str]:
        return (self.folder.resolve(), md.MODEL_MOUNT_DESTINATION)

    def notes(self) -> dict[str, str]:
        return {NOTE_DIR: str(self.folder.resolve()), NOTE_VARIANT: self.variant}


def _definition(session: SmokeSession) -> tuple[str, dict[str, Any] | None, str]:
    """(where it came from, the folder's model definition or None, the model mount destination)."""
    folder = session.notes.get(NOTE_DIR)
    if folder:
        path = next((Path(folder) / n for n in md.DEFINITION_NAMES if (Path(folder) / n).is_file()), None)
        if path is None:
            return folder, None, md.MODEL_MOUNT_DESTINATION
        text, where = path.read_text(encoding="utf-8"), str(path)
        mount = md.MODEL_MOUNT_DESTINATION
    else:
        labels = session.facts.labels
        mount = md.MODEL_MOUNT_DESTINATION
        if labels.get(ROLE_LABEL) == "INFERENCE":
            mount = labels.get(MODEL_PATH_LABEL, mount)
        found = probe(session, READ_PROBE, mount, *md.DEFINITION_NAMES)
        if found is None:
            raise CheckSkipped(f"no model folder: pass --model DIR (no model-definition.yaml under {mount} in the image)")
        text, where = found["text"], found["path"]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CheckFailed(f"{where} is not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise CheckFailed(f"{where}: the top level is not a mapping")
    return where, data, mount


def resolve_models(session: SmokeSession, variant: str) -> tuple[str, list[md.ModelConfig], list[str]]:
    """The models the agent would start (image-Cmd fallback applied) and notes on skipped ones."""
    from ...rules.model_definition import ImageContext

    where, data, mount = _definition(session)
    spec = md.RUNTIME_VARIANTS[variant]
    try:
        definition = md.ModelDefinition.model_validate(md.resolve_layers(md.variant_layers(variant, data, mount)))
    except ValidationError as exc:
        raise CheckFailed(f"the manager would reject the model definition ({where}, variant {variant}): "
                          + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    if not definition.models:
        raise CheckFailed("the model definition resolves to no model: the agent refuses the session")
    ports = ImageContext(session.facts.image, session.facts.labels).service_ports()
    problems = md.port_problems(definition.models, ports)
    if problems:
        raise CheckFailed("a stock agent refuses this session: " + "; ".join(
            f"model {definition.models[p.model_index].name!r}: {p.message}"
            + (" (ReservedPortError)" if p.kind == "reserved" else " (PortConflictError)") for p in problems))
    cmd = (session.kernel.container.image.attrs.get("Config") or {}).get("Cmd") or None
    models, skipped = [], []
    for model in definition.models:
        if model.service is None:
            skipped.append(f"{model.name} (no service)")
            continue
        if not model.service.start_command:
            if not cmd:
                skipped.append(f"{model.name} (no start_command, image has no Cmd)")
                continue
            model = model.model_copy(update={"service": model.service.model_copy(update={"start_command": shlex.join(cmd)})})
        models.append(model)
    source = where if spec.reads_vfolder_config_files or data is None else f"variant {variant} (ignores {where})"
    return source, models, skipped


def _wait_healthy(c, name: str, budget: float, session: SmokeSession) -> None:
    deadline = time.monotonic() + budget
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CheckFailed(f"model {name} was not reported healthy within {budget:.0f} s", session.kernel.logs()[-3000:])
        _, payload = c.recv({"model-service-status"}, timeout=remaining)
        status = json.loads(payload)
        if status.get("model_name") != name:
            continue
        if status.get("is_healthy"):
            return
        raise CheckFailed(f"model {name} was reported unhealthy", session.kernel.logs()[-3000:])


def model_services(session: SmokeSession) -> str:
    variant = session.notes.get(NOTE_VARIANT, md.DEFAULT_VARIANT)
    source, models, skipped = resolve_models(session, variant)
    if not models:
        raise CheckFailed(f"no model to start from {source}: " + ", ".join(skipped))
    c = session.agent(timeout=180)
    done = []
    for model in models:
        service = model.service
        assert service is not None
        result = c.start_model_service(model.model_dump(mode="json"))
        if result.status not in ("started", "running"):
            raise CheckFailed(f"start-model-service for {model.name} answered {result.status}: {result.error}",
                              session.kernel.logs()[-3000:])
        hc = service.health_check
        if hc is not None and hc.enable:
            _wait_healthy(c, model.name, min(600.0, max(30.0, hc.initial_delay)) + 2 * hc.interval, session)
            path, expected = hc.path, hc.expected_status_code
        else:
            _wait_healthy(c, model.name, 15.0, session)  # reported healthy once started, as upstream
            path, expected = "/", None
        answer = probe(session, HTTP_PROBE, f"http://127.0.0.1:{service.port}{path}", "30")
        if "error" in answer:
            raise CheckFailed(f"model {model.name}: GET {path} on port {service.port} failed: {answer['error']}",
                              session.kernel.logs()[-3000:])
        if expected is not None and answer["status"] != expected:
            raise CheckFailed(f"model {model.name}: GET {path} answered {answer['status']}, expected {expected}")
        done.append(f"{model.name} on {service.port}: GET {path} → {answer['status']}")
    note = f" (skipped: {', '.join(skipped)})" if skipped else ""
    return f"{'; '.join(done)} [{source}, variant {variant}]{note}"


CHECKS = [Check("inference.model-service", "model services (inference)", model_services)]
