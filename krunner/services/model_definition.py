"""The model-definition format (``model-definition.yaml``) as Backend.AI 26.x defines it, as data.

One source of truth for krunner's model-service engine (what the agent sends in
``start-model-service``) and for bai-imagekit (validating a model folder, resolving it the way
the manager does, and the port checks the agent does). Written from upstream's behaviour
(``ai.backend.common.config`` of backend.ai 26.9.6, the manager's revision reader and the
runtime-variant fixtures); see ``docs/model-services.md`` for the field-by-field history.

Upstream facts encoded here:

* every model is ``{name, model_path, service?, metadata?}``; keys may be written snake_case or
  kebab-case; unknown keys are kept and ignored (upstream's ``extra="allow"``);
* ``service.start_command`` is one string (26.8, #12445); a list of strings is joined with
  ``shlex.join``; ``command`` / ``start-command`` are accepted as spellings (#11497); a missing
  command means "the image's ``Config.Cmd``" (the agent's fallback);
* ``shell`` defaults to ``/bin/bash``; ``null`` (or empty) runs the command without a shell;
* ``port`` must be greater than 1;
* ``health_check``: ``enable`` false, ``path`` ``/health``, ``interval`` 10, ``max_retries`` 10,
  ``max_wait_time`` 15, ``expected_status_code`` 200 (> 100), ``initial_delay`` 60 (≥ 0) — a
  grace period for the first passing probe, never a delay before it (26.4.4, #11863). In a
  model-definition *file* a non-empty ``health_check`` block opts in (``enable`` defaults to
  true there) and an empty one opts out (``from_file_payload``).
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from ..contract import INTRINSIC_SERVICE_PORTS, REPL_PORTS

DEFAULT_SHELL = "/bin/bash"
#: where the manager mounts the model folder unless the request says otherwise (the lowest
#: ``model_path`` default of the revision merge)
MODEL_MOUNT_DESTINATION = "/models"
#: the names the manager looks for in the model folder, in order
DEFINITION_NAMES = ("model-definition.yaml", "model-definition.yml")
DEPLOYMENT_CONFIG_NAME = "deployment-config.yaml"
#: the runner's own ports (ReservedPortError) and the agent's intrinsic services
RESERVED_PORTS = REPL_PORTS
INTRINSIC_PORTS = INTRINSIC_SERVICE_PORTS
COMMAND_KEYS = ("command", "start_command", "start-command")


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class _Config(BaseModel):
    """Upstream's ``BaseConfigModel``: snake_case or kebab-case keys, unknown keys kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=_kebab)


class HealthCheck(_Config):
    enable: bool = False
    interval: float = 10.0
    path: str = "/health"
    max_retries: int = 10
    max_wait_time: float = 15.0
    expected_status_code: int = Field(200, gt=100)
    initial_delay: float = Field(60.0, ge=0)


class PreStartAction(_Config):
    action: str
    args: dict[str, Any] = {}


def normalize_command(service: Any) -> Any:
    """``command`` / ``start_command`` / ``start-command`` → one ``start_command`` string
    (``command`` wins; a list of strings is ``shlex.join``-ed)."""
    if not isinstance(service, Mapping):
        return service
    out = {k: v for k, v in service.items() if k not in COMMAND_KEYS}
    command = service.get("command")
    if command is None:
        command = service.get("start_command", service.get("start-command"))
        if isinstance(command, list) and all(isinstance(a, str) for a in command):
            command = shlex.join(command)
    if command is not None or "start_command" in service or "start-command" in service:
        out["start_command"] = command
    return out


class ModelService(_Config):
    pre_start_actions: list[PreStartAction] = []
    start_command: Optional[str] = None
    shell: Optional[str] = DEFAULT_SHELL
    port: int = Field(gt=1)
    health_check: Optional[HealthCheck] = None

    @model_validator(mode="before")
    @classmethod
    def _command(cls, data: Any) -> Any:
        return normalize_command(data)


class ModelMetadata(_Config):
    author: Optional[str] = None
    title: Optional[str] = None
    version: Union[int, str, None] = None
    created: Optional[str] = Field(None, validation_alias=AliasChoices("created", "created_at", "created-at"))
    last_modified: Optional[str] = Field(
        None, validation_alias=AliasChoices("last_modified", "last-modified", "modified_at", "modified-at")
    )
    description: Optional[str] = None
    task: Optional[str] = None
    category: Optional[str] = None
    architecture: Optional[str] = None
    framework: Optional[list[str]] = None
    label: Optional[list[str]] = None
    license: Optional[str] = None
    min_resource: Optional[dict[str, Any]] = None


class ModelConfig(_Config):
    name: str
    model_path: str
    service: Optional[ModelService] = None
    metadata: Optional[ModelMetadata] = None


class ModelDefinition(_Config):
    models: list[ModelConfig] = []


def known_keys(model: type[BaseModel]) -> set[str]:
    """Every spelling of the fields of *model* (snake, kebab, validation aliases)."""
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        keys |= {name, _kebab(name)}
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            keys |= {a for a in alias.choices if isinstance(a, str)}
    if model is ModelService:
        keys |= set(COMMAND_KEYS)
    return keys


# ------------------------------------------------------------------------------ runtime variants

@dataclass(frozen=True)
class RuntimeVariant:
    name: str
    description: str
    #: only then the manager reads deployment-config.yaml and model-definition.yaml from the folder
    reads_vfolder_config_files: bool
    default_model_definition: Mapping[str, Any]

    @property
    def service(self) -> Mapping[str, Any]:
        return self.default_model_definition["models"][0]["service"]


def _variant(name: str, description: str, model: str, port: int, *, command: str | None = None,
             health: Mapping[str, Any] | None = None, reads: bool = False) -> RuntimeVariant:
    service: dict[str, Any] = {}
    if command is not None:
        service["start_command"] = command
    service["port"] = port
    if health is not None:
        service["health_check"] = dict(health)
    return RuntimeVariant(name, description, reads, {"models": [{"name": model, "service": service}]})


_PRESET_HC = {"enable": True, "path": "/health", "interval": 10.0, "max_retries": 10, "initial_delay": 1800.0}

#: The runtime variants' default model definitions, transcribed from upstream's
#: ``fixtures/manager/example-runtime-variants.json`` (lablup/backend.ai c0032c4, 26.8 line).
#: Installations may edit their variants; these are the shipped defaults.
RUNTIME_VARIANTS: dict[str, RuntimeVariant] = {v.name: v for v in (
    _variant("vllm", "vLLM", "vllm-model", 8000, command="vllm serve '{model_path}'", health=_PRESET_HC),
    _variant("nim", "NVIDIA NIM", "nim-model", 8000, health={**_PRESET_HC, "path": "/v1/health/ready"}),
    _variant("cmd", "Predefined Image Command", "image-model", 8000),
    _variant("huggingface-tgi", "Huggingface TGI", "tgi-model", 3000,
             command="text-generation-launcher --model-id '{model_path}'", health={**_PRESET_HC, "path": "/info"}),
    _variant("sglang", "SGLang", "sglang-model", 9001,
             command="python -m sglang.launch_server --model-path '{model_path}'", health=_PRESET_HC),
    _variant("modular-max", "Modular MAX", "max-model", 8000, command="max serve --model '{model_path}'",
             health=_PRESET_HC),
    _variant("llama-cpp", "llama.cpp", "llamacpp-model", 8080,
             command="sh -c 'llama-server -m \"$(ls /models/*.gguf | head -n1)\" \"$@\"' llama-cpp",
             health={"path": "/health", "interval": 10.0, "max_retries": 30, "initial_delay": 60.0}),
    _variant("custom", "Custom (Default)", "custom-model", 8080, reads=True,
             health={"enable": False, "path": "/health", "interval": 10.0, "max_retries": 10, "initial_delay": 1800.0}),
)}
DEFAULT_VARIANT = "custom"


# ------------------------------------------------------------------------------ the manager's merge

_SNAKE = {_kebab(k): k for m in (ModelService, HealthCheck, ModelConfig) for k in m.model_fields}


def _snake(d: Mapping[str, Any]) -> dict[str, Any]:
    return {_SNAKE.get(k, k): v for k, v in d.items()}


def file_payload(data: Mapping[str, Any]) -> dict[str, Any]:
    """A model-definition file as a draft (``from_file_payload``): keys snake_case, commands
    normalised, a non-empty ``health_check`` opts in (``enable`` true unless set), an empty one
    opts out."""
    out = copy.deepcopy(dict(data))
    models = out.get("models")
    if not isinstance(models, list):
        return out
    for i, model in enumerate(models):
        if not isinstance(model, Mapping):
            continue
        model = models[i] = _snake(model)
        service = model.get("service")
        if not isinstance(service, Mapping):
            continue
        service = model["service"] = _snake(normalize_command(service))
        if "health_check" in service:
            hc = service["health_check"]
            if not hc:
                service["health_check"] = {"enable": False}
            elif isinstance(hc, Mapping):
                hc = service["health_check"] = _snake(hc)
                if hc.get("enable") is None:
                    hc["enable"] = True
    return out


def _merge_fields(base: Mapping[str, Any], over: Mapping[str, Any], nested: Mapping[str, Any],
                  keep_null: frozenset[str] = frozenset()) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if key in nested and isinstance(out.get(key), Mapping) and isinstance(value, Mapping):
            out[key] = nested[key](out[key], value)
        elif value is not None or key in keep_null:
            out[key] = value
    return out


def _merge_health(b: Mapping[str, Any], o: Mapping[str, Any]) -> dict[str, Any]:
    return _merge_fields(b, o, {})


def _merge_service(b: Mapping[str, Any], o: Mapping[str, Any]) -> dict[str, Any]:
    # ``shell: null`` is an explicit "no shell"; every other null keeps the lower layer
    return _merge_fields(b, o, {"health_check": _merge_health}, frozenset({"shell"}))


def _merge_model(b: Mapping[str, Any], o: Mapping[str, Any]) -> dict[str, Any]:
    return _merge_fields(b, o, {"service": _merge_service, "metadata": lambda x, y: _merge_fields(x, y, {})})


def merge_drafts(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """One layer over another, as the manager merges revision drafts (models by index)."""
    b, o = base.get("models"), over.get("models")
    if o is None:
        return {"models": list(b or [])}
    if not b:
        return {"models": list(o)}
    if not o:
        return {"models": list(b)}
    merged = []
    for i in range(max(len(b), len(o))):
        if i >= len(b):
            merged.append(o[i])
        elif i >= len(o):
            merged.append(b[i])
        else:
            merged.append(_merge_model(b[i], o[i]))
    return {"models": merged}


def resolve_layers(layers: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge draft *layers* (lowest first) and resolve ``{model_path}`` in each start command —
    the payload ``ModelDefinition.model_validate`` gets on the manager's side."""
    merged: dict[str, Any] = {"models": []}
    for layer in layers:
        merged = merge_drafts(merged, layer)
    for model in merged["models"]:
        service = model.get("service")
        path = model.get("model_path")
        if isinstance(service, dict) and isinstance(service.get("start_command"), str) and isinstance(path, str):
            service["start_command"] = service["start_command"].replace("{model_path}", path)
    return merged


def variant_layers(variant: str, vfolder_definition: Mapping[str, Any] | None,
                   mount_destination: str = MODEL_MOUNT_DESTINATION) -> list[dict[str, Any]]:
    """The manager's draft layers without presets or a request: the mount destination as
    ``model_path``, the variant's defaults, and the folder's definition when the variant reads it."""
    spec = RUNTIME_VARIANTS[variant]
    layers = [{"models": [{"model_path": mount_destination}]}, copy.deepcopy(dict(spec.default_model_definition))]
    if spec.reads_vfolder_config_files and vfolder_definition:
        layers.append(file_payload(vfolder_definition))
    return layers


# ------------------------------------------------------------------------------ the agent's port check

@dataclass(frozen=True)
class PortProblem:
    model_index: int
    kind: str  # "reserved" | "conflict"
    message: str


def port_problems(models: list[ModelConfig], service_ports: Mapping[str, tuple[int, ...]]) -> list[PortProblem]:
    """What the agent's ``_load_model_definition`` raises, for every model instead of the first:
    2000/2001 → ``ReservedPortError``; a port already taken by sshd/ttyd, a preopen port, an image
    service port or an earlier model → ``PortConflictError`` (the session is refused)."""
    taken: list[tuple[str, tuple[int, ...]]] = [(n, (p,)) for n, p in INTRINSIC_PORTS.items()]
    taken += list(service_ports.items())
    out = []
    for index, model in enumerate(models):
        if model.service is None:
            continue
        port = model.service.port
        if port in RESERVED_PORTS:
            out.append(PortProblem(index, "reserved", f"port {port} is reserved for the kernel runner (2000 and 2001)"))
            continue
        owner = next((name for name, ports in taken if port in ports), None)
        if owner is not None:
            out.append(PortProblem(index, "conflict", f"port {port} overlaps with built-in service {owner}"))
            continue
        taken.append((f"{model.name}-{port}", (port,)))
    return out
