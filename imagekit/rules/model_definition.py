"""BAI6xx: model folders (``model-definition.yaml``, ``deployment-config.yaml``), checked the way
Backend.AI 26.x reads them — the manager's merge with the runtime variant's defaults, the
agent's port checks against the image's labels, its image-``Cmd`` fallback.

The format itself (fields, defaults, the variant table) is :mod:`krunner.services.model_definition`,
the same code krunner's model-service engine uses. Findings point at ``file:line`` through
PyYAML's node marks. This module has no ``check(inputs)``: a model folder is its own target
kind (:func:`imagekit.targets.load_model_dir`), checked by :func:`check_folder`, optionally
against an image's labels and ``Cmd``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from krunner.services import model_definition as md

from ..findings import Finding, Location, Severity, display_path
from .catalogue import rule
from .service_ports import LABEL as SERVICE_PORTS_LABEL
from .service_ports import parse_service_ports

SUBJECT = "model-definition"
MATCHES = "Backend.AI 26.x (backend.ai-common/agent 26.9.6; the manager's revision merge of 26.8)"

UNREADABLE = rule(
    "BAI601", "error", "model-definition file is not a YAML mapping",
    "Write `model-definition.yaml` as YAML with a top-level mapping holding `models:`.",
    description="The manager parses the file when a deployment revision is created and refuses the revision "
    "when it is not YAML or its top level is not a mapping (#13096).",
    subject=SUBJECT, matches=MATCHES,
)
INVALID = rule(
    "BAI602", "error", "value rejected by Backend.AI's ModelDefinition",
    "Give the field the type upstream's model expects (see docs/model-services.md).",
    description="After merging the runtime variant's defaults, the folder's file and the request, the manager "
    "validates the result as `ModelDefinition` (name and model_path strings, `port` an integer greater than 1, "
    "`start_command` a string or a list of strings, typed metadata); a failure refuses the deployment.",
    subject=SUBJECT, matches=MATCHES,
)
UNKNOWN_KEY = rule(
    "BAI603", "warning", "unknown key in a model folder file",
    "Check the spelling against docs/model-services.md; snake_case and kebab-case are both accepted.",
    description="Upstream's models keep unknown keys and ignore them (`extra=\"allow\"`), so a typo such as "
    "`helth_check` silently drops the setting; the manager ignores unknown keys of deployment-config.yaml too.",
    subject=SUBJECT, matches=MATCHES,
)
EMPTY = rule(
    "BAI604", "warning", "model definition lists no models",
    "List at least one model under `models:`.",
    description="An empty `models` list leaves the runtime variant's default model in place (for `custom`: "
    "`custom-model` on port 8080 running the image's Cmd); a definition that resolves to no model at all is "
    "refused by the agent (`ModelDefinitionEmptyError`).",
    subject=SUBJECT, matches=MATCHES,
)
RESERVED = rule(
    "BAI605", "error", "model port is reserved for the kernel runner",
    "Serve the model on another port (2000 and 2001 are the runner's).",
    description="The agent raises `ReservedPortError` for a model service on port 2000 or 2001 and refuses "
    "the session.",
    subject=SUBJECT, matches=MATCHES,
)
PORT_CONFLICT = rule(
    "BAI606", "error", "model port overlaps a built-in, image or other model service port",
    "Pick a port no labelled service-port, sshd (2200), ttyd (7681) or other model uses, or remove the "
    "image's service-port entry for it.",
    description="The agent collects sshd (2200), ttyd (7681), the requested preopen ports and the image's "
    "`ai.backend.service-ports` (endpoint ports included), then adds every model's port as a new preopen "
    "service; a model port already in that list raises `PortConflictError` and the session is refused "
    "(upstream #1750). An inference image must therefore not label the port its model serves on.",
    subject=SUBJECT, matches=MATCHES,
)
NO_COMMAND = rule(
    "BAI607", "error", "model has no start command and the image has no Cmd",
    "Set `service.start_command`, or give the image a `CMD` that starts the model server.",
    description="Without `start_command` the agent runs the image's `Config.Cmd`; when the image has none it "
    "logs a warning and skips the model, so the endpoint never becomes healthy. Without an image to look at "
    "this is reported as info.",
    subject=SUBJECT, matches=MATCHES,
)
BAD_HEALTH = rule(
    "BAI608", "error", "invalid health-check value",
    "Use `expected_status_code` > 100, `initial_delay` ≥ 0 and numbers for the timings.",
    description="`ModelHealthCheck` rejects these values and with them the deployment.",
    subject=SUBJECT, matches=MATCHES,
)
WEAK_HEALTH = rule(
    "BAI609", "warning", "health check that cannot work as written",
    "Start `path` with `/`; use positive `interval`/`max_wait_time` and `max_retries` ≥ 1; "
    "set `enable: true` to have the route probed.",
    description="Upstream probes `http://<host>:<port><path>` every `interval` seconds with a "
    "`max_wait_time` timeout and marks the route unhealthy after `max_retries` consecutive failures; a "
    "path without a leading slash, a non-positive timing or `enable: false` next to other settings means "
    "the check does not do what the file suggests. `initial_delay` is a grace period, not a delay "
    "before the first probe (26.4.4, #11863).",
    subject=SUBJECT, matches=MATCHES,
)
NO_SERVICE = rule(
    "BAI610", "warning", "model without a service",
    "Add a `service:` block with `port` (and `start_command`), or remove the model.",
    description="The agent skips a model with no service (nothing is started for it).",
    subject=SUBJECT, matches=MATCHES,
)
BAD_DEPLOYMENT = rule(
    "BAI611", "error", "deployment-config.yaml is malformed",
    "Write a mapping with `image`/`architecture` strings and `resource_slots`, `resource_opts` and "
    "`environ` mappings (environ values are strings).",
    description="The manager validates deployment-config.yaml (the successor of service-definition.toml, "
    "#10658) when a revision is created and refuses the revision on a malformed file (#13096).",
    subject=SUBJECT, matches=MATCHES,
)

EXAMPLES: dict[str, str] = {
    "BAI603": "`helth_check:` → `health_check:`",
    "BAI605": "`port: 2000` → `port: 8000`",
    "BAI606": "model `port: 8000` with the label `inference:preopen:8000` → drop the label entry or move the model",
    "BAI607": "no `start_command` and no image `CMD` → `start_command: python3 serve.py 8000 {model_path}`",
    "BAI608": "`expected_status_code: 0` → `expected_status_code: 200`",
    "BAI609": "`path: health` → `path: /health`",
}

DEPLOYMENT_KEYS = {"image", "architecture", "environment", "resource_slots", "resource_opts", "environ"}


# ------------------------------------------------------------------------------------ YAML with lines


@dataclass
class YamlDoc:
    """A parsed YAML file and its node tree (for line numbers)."""

    display: str
    data: Any
    root: yaml.Node | None

    def node(self, path: Sequence[str | int]) -> yaml.Node | None:
        """The deepest node along *path* (keys: snake or kebab spelling; ints: list indices)."""
        node = self.root
        for part in path:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                spellings = {part, part.replace("_", "-"), part.replace("-", "_")}
                found = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value in spellings), None)
                if found is None:
                    return node
                node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
            else:
                return node
        return node

    def key_node(self, path: Sequence[str | int], key: str) -> yaml.Node | None:
        parent = self.node(path)
        if isinstance(parent, yaml.MappingNode):
            for k, _ in parent.value:
                if isinstance(k, yaml.ScalarNode) and k.value in (key, key.replace("_", "-")):
                    return k
        return parent

    def at(self, path: Sequence[str | int] = (), key: str | None = None) -> Location:
        node = self.key_node(path, key) if key is not None else self.node(path)
        if node is None:
            return Location(file=self.display)
        return Location(file=self.display, line=node.start_mark.line + 1, column=node.start_mark.column + 1)


def read_yaml(path: Path, display: str) -> tuple[YamlDoc | None, Finding | None, str | None]:
    """(document, problem, error text): a problem when the file is not YAML or not a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, None, f"cannot read {display}: {exc}"
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = Location(file=display, line=mark.line + 1 if mark else None)
        return None, UNREADABLE.finding(f"{display} is not valid YAML: {exc}".splitlines()[0], location=loc), None
    doc = YamlDoc(display, data, root)
    if data is None:
        return doc, None, None  # empty: the manager skips it
    if not isinstance(data, Mapping):
        return None, UNREADABLE.finding(f"the top level of {display} is a {type(data).__name__}, not a mapping",
                                        location=doc.at()), None
    return doc, None, None


# ------------------------------------------------------------------------------------ what the checks need


#: the image's Cmd is not known (a Dockerfile, a kernel dir, a label dump, or no image at all)
UNKNOWN_CMD: Any = object()


@dataclass
class ImageContext:
    """The image a model folder is checked against."""

    name: str
    labels: dict[str, str]
    label_locations: dict[str, Location] = field(default_factory=dict)
    cmd: Any = UNKNOWN_CMD  # list[str] | None | UNKNOWN_CMD

    def service_ports(self) -> dict[str, tuple[int, ...]]:
        parsed = parse_service_ports(self.labels.get(SERVICE_PORTS_LABEL, ""))
        out: dict[str, tuple[int, ...]] = {}
        for entry in parsed.active():
            out.setdefault(entry.name, entry.ports)
        return out


@dataclass
class FolderCheck:
    """Everything found about one model folder: findings and, if it resolves, the models."""

    findings: list[Finding]
    models: list[md.ModelConfig] | None  # None: the definition does not validate
    definition: YamlDoc | None


def find_definition(folder: Path) -> Path | None:
    return next((folder / n for n in md.DEFINITION_NAMES if (folder / n).is_file()), None)


# ------------------------------------------------------------------------------------ checks


def _unknown_keys(doc: YamlDoc) -> list[Finding]:
    out: list[Finding] = []

    def walk(data: Any, model: type, path: list[str | int]) -> None:
        if not isinstance(data, Mapping):
            return
        known = md.known_keys(model)
        for key, value in data.items():
            if not isinstance(key, str) or key not in known:
                where = ".".join(str(p) for p in path) or "the top level"
                out.append(UNKNOWN_KEY.finding(f"unknown key {key!r} in {where} (Backend.AI ignores it)",
                                               location=doc.at(path, str(key))))
                continue
            snake = key.replace("-", "_")
            if model is md.ModelDefinition and snake == "models" and isinstance(value, list):
                for i, item in enumerate(value):
                    walk(item, md.ModelConfig, [*path, key, i])
            elif model is md.ModelConfig and snake == "service":
                walk(value, md.ModelService, [*path, key])
            elif model is md.ModelConfig and snake == "metadata":
                walk(value, md.ModelMetadata, [*path, key])
            elif model is md.ModelService and snake == "health_check":
                walk(value, md.HealthCheck, [*path, key])
            elif model is md.ModelService and snake == "pre_start_actions" and isinstance(value, list):
                for i, item in enumerate(value):
                    walk(item, md.PreStartAction, [*path, key, i])

    walk(doc.data, md.ModelDefinition, [])
    return out


def _health_warnings(doc: YamlDoc) -> list[Finding]:
    out: list[Finding] = []
    for i, model in enumerate(doc.data.get("models") or []):
        if not isinstance(model, Mapping):
            continue
        service = model.get("service")
        if not isinstance(service, Mapping):
            continue
        key = "health_check" if "health_check" in service else "health-check" if "health-check" in service else None
        hc = service.get(key) if key else None
        if not isinstance(hc, Mapping) or not hc:
            continue
        base = ["models", i, "service", key]
        if hc.get("enable") is False and len(hc) > 1:
            out.append(WEAK_HEALTH.finding(f"model {i}: health_check has settings but `enable: false`, so the route is "
                                           "never probed", location=doc.at(base, "enable")))
        path = hc.get("path")
        if isinstance(path, str) and not path.startswith("/"):
            out.append(WEAK_HEALTH.finding(f"model {i}: health-check path {path!r} does not start with '/' "
                                           "(probed as http://host:port + path)", location=doc.at([*base, "path"])))
        for name in ("interval", "max_wait_time", "max-wait-time"):
            v = hc.get(name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0:
                out.append(WEAK_HEALTH.finding(f"model {i}: health-check {name} {v} is not positive",
                                               location=doc.at([*base, name])))
        for name in ("max_retries", "max-retries"):
            v = hc.get(name)
            if isinstance(v, int) and not isinstance(v, bool) and v < 1:
                out.append(WEAK_HEALTH.finding(f"model {i}: health-check {name} {v} means the first failed probe marks "
                                               "the route unhealthy", location=doc.at([*base, name])))
    return out


def _pydantic_findings(doc: YamlDoc | None, exc: ValidationError, fallback: Location) -> list[Finding]:
    out = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if isinstance(p, (str, int))]
        where = ".".join(str(p) for p in loc)
        location = doc.at(loc) if doc is not None else fallback
        health = any(isinstance(p, str) and p.replace("-", "_") == "health_check" for p in loc)
        r = BAD_HEALTH if health else INVALID
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "field required (neither the file nor the runtime variant's defaults set it)"
        out.append(r.finding(f"{where}: {msg}", location=location))
    return out


def _structure(doc: YamlDoc) -> list[Finding]:
    """Shapes the manager's draft parser rejects before any merge (models must be a list of mappings…)."""
    models = doc.data.get("models")
    if models is None:
        return []
    if not isinstance(models, list):
        return [INVALID.finding("models: must be a list of models", location=doc.at(["models"]))]
    out = []
    for i, m in enumerate(models):
        if not isinstance(m, Mapping):
            out.append(INVALID.finding(f"models.{i}: must be a mapping", location=doc.at(["models", i])))
        elif m.get("service") is not None and not isinstance(m.get("service"), Mapping):
            out.append(INVALID.finding(f"models.{i}.service: must be a mapping", location=doc.at(["models", i, "service"])))
    return out


def check_deployment_config(path: Path) -> list[Finding]:
    display = display_path(path)
    doc, problem, error = read_yaml(path, display)
    if error is not None:
        return [BAD_DEPLOYMENT.finding(error, location=Location(file=display))]
    if problem is not None:
        return [BAD_DEPLOYMENT.finding(problem.message, location=problem.location)]
    if doc is None or doc.data is None:
        return []
    out: list[Finding] = []

    def section(data: Mapping[str, Any], path: list[str | int], allow_variants: bool) -> None:
        for key, value in data.items():
            here = [*path, key]
            if allow_variants and key in md.RUNTIME_VARIANTS:
                if isinstance(value, Mapping):
                    section(value, here, False)
                else:
                    out.append(BAD_DEPLOYMENT.finding(f"{key}: a variant section must be a mapping", location=doc.at(here)))
                continue
            if key not in DEPLOYMENT_KEYS:
                out.append(UNKNOWN_KEY.finding(f"unknown key {key!r} in {display} (the manager ignores it)",
                                               location=doc.at(path, str(key))))
                continue
            if key in ("image", "architecture") and value is not None and not isinstance(value, str):
                out.append(BAD_DEPLOYMENT.finding(f"{key}: must be a string", location=doc.at(here)))
            elif key == "environment":
                if not isinstance(value, Mapping):
                    out.append(BAD_DEPLOYMENT.finding("environment: must be a mapping (image, architecture)", location=doc.at(here)))
                else:
                    for k, v in value.items():
                        if k not in ("image", "architecture"):
                            out.append(UNKNOWN_KEY.finding(f"unknown key {k!r} in environment", location=doc.at(here, str(k))))
                        elif not isinstance(v, str):
                            out.append(BAD_DEPLOYMENT.finding(f"environment.{k}: must be a string", location=doc.at([*here, k])))
            elif key in ("resource_slots", "resource_opts", "environ") and value is not None:
                if not isinstance(value, Mapping):
                    out.append(BAD_DEPLOYMENT.finding(f"{key}: must be a mapping", location=doc.at(here)))
                elif key == "environ":
                    for k, v in value.items():
                        if not isinstance(v, str):
                            out.append(BAD_DEPLOYMENT.finding(f"environ.{k}: must be a string (quote it: \"{v}\")",
                                                              location=doc.at([*here, str(k)])))

    section(doc.data, [], True)
    return out


def check_folder(folder: Path, image: ImageContext | None = None, variant: str = md.DEFAULT_VARIANT) -> FolderCheck:
    """Every finding for the model folder *folder*, resolved for *variant*, checked against *image*."""
    findings: list[Finding] = []
    config = folder / md.DEPLOYMENT_CONFIG_NAME
    if config.is_file():
        findings += check_deployment_config(config)
    path = find_definition(folder)
    display = display_path(path) if path else display_path(folder)
    doc: YamlDoc | None = None
    raw: Mapping[str, Any] | None = None
    if path is not None:
        doc, problem, error = read_yaml(path, display)
        if error is not None:
            findings.append(UNREADABLE.finding(error, location=Location(file=display)))
            return FolderCheck(findings, None, None)
        if problem is not None:
            findings.append(problem)
            return FolderCheck(findings, None, None)
        if doc is not None and doc.data is not None:
            findings += _unknown_keys(doc)
            structural = _structure(doc)
            if structural:
                return FolderCheck(findings + structural, None, doc)
            raw = doc.data
            findings += _health_warnings(doc)
            if isinstance(raw.get("models"), list) and not raw["models"]:
                findings.append(EMPTY.finding("`models` is empty: the runtime variant's default model is used",
                                              location=doc.at(["models"])))
    fallback = Location(file=display)
    spec = md.RUNTIME_VARIANTS[variant]
    resolved = md.resolve_layers(md.variant_layers(variant, raw))
    try:
        definition = md.ModelDefinition.model_validate(resolved)
    except ValidationError as exc:
        return FolderCheck(findings + _pydantic_findings(doc if spec.reads_vfolder_config_files else None, exc, fallback),
                           None, doc)
    reads = spec.reads_vfolder_config_files and doc is not None

    def where(index: int, *path: str) -> Location:
        if not reads or doc is None:
            return fallback
        if not path:
            return doc.at(["models", index])
        return doc.at(["models", index, *path[:-1]], path[-1])  # the key's line

    if not definition.models:
        findings.append(EMPTY.finding("no model to start: the agent refuses the session (ModelDefinitionEmptyError)",
                                      location=fallback, severity=Severity.ERROR))
    for i, model in enumerate(definition.models):
        if model.service is None:
            findings.append(NO_SERVICE.finding(f"model {model.name!r} has no service: the agent skips it", location=where(i)))
            continue
        if not model.service.start_command:
            if image is None or image.cmd is UNKNOWN_CMD:
                findings.append(NO_COMMAND.finding(
                    f"model {model.name!r} has no start_command: the agent runs the image's Cmd instead "
                    "(check that the image has one)", location=where(i, "service"), severity=Severity.INFO))
            elif not image.cmd:
                findings.append(NO_COMMAND.finding(
                    f"model {model.name!r} has no start_command and image {image.name} has no Cmd: the agent skips it",
                    location=where(i, "service")))
    ports = image.service_ports() if image is not None else {}
    for problem in md.port_problems(definition.models, ports):
        model = definition.models[problem.model_index]
        message = f"model {model.name!r}: {problem.message}"
        if problem.kind == "reserved":
            findings.append(RESERVED.finding(message + " (ReservedPortError)", location=where(problem.model_index, "service", "port")))
            continue
        if image is not None and any(model.service and model.service.port in p for p in ports.values()):
            label_loc = image.label_locations.get(SERVICE_PORTS_LABEL)
            message += f" from the label ai.backend.service-ports of {image.name}" + (f" ({label_loc})" if label_loc else "")
        findings.append(PORT_CONFLICT.finding(message + ": a stock agent raises PortConflictError and refuses the session",
                                              location=where(problem.model_index, "service", "port")))
    return FolderCheck(findings, list(definition.models), doc)
