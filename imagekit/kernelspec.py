"""``kernel.toml``: the kernel spec file an image author keeps next to the Dockerfile.

It says, in author terms, what ``bai-imagekit build`` turns into ``ai.backend.*`` labels,
which service definitions to copy into the image and which jail policy to install::

    [kernel]
    runtime-type = "python"
    runtime-path = "/usr/bin/python3"
    features = ["batch", "query", "uid-match", "user-input"]
    base-distro = "ubuntu22.04"

    [resources]
    min.cpu = 1
    min.mem = "1g"

    [services]
    jupyterlab = { library = true }                      # def from the service-def library
    custom = { port = 8080, def = "service-defs/custom.json" }

    [policy]
    file = "policy.yml"                                   # or: default = true

:func:`load_spec` reads the file, rejects unknown keys with their line, and returns a
:class:`LoadedSpec` with the labels, the line each label came from, the service selection
and the policy choice. ``python -m imagekit.kernelspec`` rewrites the JSON Schema in
``imagekit/schemas/kernel-spec.schema.json``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError, model_validator

from krunner.contract import (
    ACCELERATORS_LABEL,
    CORECOUNT_LABEL,
    ENDPOINT_PORTS_LABEL,
    FEATURES_LABEL,
    KERNELSPEC_LABEL,
    MODEL_FORMAT_LABEL,
    MODEL_PATH_LABEL,
    ROLE_LABEL,
    SERVICE_PORTS_LABEL,
    SHMEM_LABEL,
)

from .errors import UsageError
from .findings import Location
from .runner_target import RUNNER_LABEL

SPEC_FILENAME = "kernel.toml"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "kernel-spec.schema.json"
SCHEMA_ID = "https://backend.ai/schemas/imagekit/kernel-spec.schema.json"

#: default ports of the service-def library entries (``[services] NAME = {library = true}``)
LIBRARY_PORTS: dict[str, int] = {
    "jupyter": 8091,
    "jupyterlab": 8090,
    "tensorboard": 6006,
    "code-server": 8180,
    "mlflow-ui": 5000,
    "filebrowser": 8081,
    "vnc-web": 6080,
    "static-files": 8082,
}

Scalar = StrictStr | StrictInt | StrictFloat
ResourceValue = Scalar | dict[str, Scalar]


def library_dir() -> Path:
    """The service-def library: ``$BAI_IMAGEKIT_SERVICE_DEFS``, this checkout's ``service-defs/``, or
    the copy an installed wheel puts in ``<prefix>/share/bai-imagekit/service-defs``."""
    env = os.environ.get("BAI_IMAGEKIT_SERVICE_DEFS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent / "service-defs"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "bai-imagekit" / "service-defs"


def library_names() -> list[str]:
    d = library_dir()
    return sorted(p.stem for p in d.glob("*.json") if p.stem != "schema") if d.is_dir() else []


# --------------------------------------------------------------------------- the model


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class KernelSection(_Section):
    """``[kernel]``: what the runner needs to know to start the image."""

    kernelspec: StrictInt = Field(1, description="ai.backend.kernelspec; only 1 exists")
    runtime_type: StrictStr | None = Field(
        None, alias="runtime-type", description="ai.backend.runtime-type: app, python, …", examples=["python", "app"]
    )
    runtime_path: StrictStr | None = Field(
        None, alias="runtime-path", description="ai.backend.runtime-path: absolute path of the interpreter"
    )
    features: list[StrictStr] | None = Field(
        None, description="ai.backend.features tokens", examples=[["batch", "query", "uid-match", "user-input"]]
    )
    base_distro: StrictStr | None = Field(
        None, alias="base-distro", description="ai.backend.base-distro, e.g. ubuntu22.04", examples=["ubuntu22.04"]
    )
    role: Literal["COMPUTE", "INFERENCE", "SYSTEM"] | None = Field(None, description=ROLE_LABEL)
    accelerators: list[StrictStr] | None = Field(None, description="ai.backend.accelerators, e.g. [\"cuda\"]")
    runner: Literal["stock", "krunner"] | None = Field(
        None,
        description="the kernel runner the image is made for (label ai.backend.imagekit.runner): validate, build "
        "and test check for it unless --runner says otherwise; default stock",
    )
    corecount_envs: list[StrictStr] | None = Field(
        None,
        alias="corecount-envs",
        description="ai.backend.envs.corecount: variables set to the allocated core count",
        examples=[["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NPROC"]],
    )


class PreferredSection(_Section):
    shmem: StrictStr | StrictInt | None = Field(None, description="ai.backend.resource.preferred.shmem, e.g. \"64m\"")


class ResourcesSection(_Section):
    """``[resources]``: ``min.<slot>`` / ``max.<slot>`` become ``ai.backend.resource.min/max.<slot>``."""

    min: dict[str, ResourceValue] = Field(
        default_factory=dict, description="minimum per slot: cpu, mem (\"1g\"), cuda.device, …"
    )
    max: dict[str, ResourceValue] = Field(default_factory=dict, description="informational maximum per slot")
    preferred: PreferredSection | None = None


class ServiceEntry(_Section):
    """One ``[services]`` entry: a name in ``ai.backend.service-ports`` plus where its def file comes from."""

    port: StrictInt | None = Field(None, description="container port (library entries have a default)")
    ports: list[StrictInt] | None = Field(None, description="several ports: NAME:PROTO:[a,b]")
    protocol: StrictStr = Field("http", description="http, tcp, preopen, vnc, rdp (pty is ignored upstream)")
    library: bool | StrictStr = Field(
        False, description="true: copy the library def of this name; a string: the library entry to copy"
    )
    def_: StrictStr | None = Field(
        None, alias="def", description="def file relative to the spec file (default service-defs/NAME.json)"
    )

    @model_validator(mode="after")
    def _exclusive(self) -> "ServiceEntry":
        if self.port is not None and self.ports is not None:
            raise ValueError("give either 'port' or 'ports', not both")
        if self.library and self.def_ is not None:
            raise ValueError("give either 'library' or 'def', not both")
        if self.ports is not None and not self.ports:
            raise ValueError("'ports' must not be empty")
        return self


class PolicySection(_Section):
    """``[policy]``: the jail policy copied to ``/etc/backend.ai/jail/policy.yml``."""

    file: StrictStr | None = Field(None, description="policy file relative to the spec file")
    default: bool | None = Field(None, description="true: install imagekit's default policy; false (no file): none")

    @model_validator(mode="after")
    def _exclusive(self) -> "PolicySection":
        if self.file is not None and self.default:
            raise ValueError("give either 'file' or 'default = true', not both")
        return self


class InferenceSection(_Section):
    """``[inference]``: makes the image an ``INFERENCE`` image."""

    endpoint_ports: list[StrictStr] = Field(alias="endpoint-ports", description="service names (preopen) to serve")
    model_path: StrictStr = Field(alias="model-path")
    model_format: StrictStr = Field(alias="model-format")


class KernelSpec(_Section):
    """The whole ``kernel.toml``."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        frozen=True,
        title="kernel.toml",
        json_schema_extra={"description": "bai-imagekit kernel spec file (TOML)"},
    )

    kernel: KernelSection = Field(default_factory=KernelSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    services: dict[str, ServiceEntry] = Field(default_factory=dict)
    labels: dict[str, Scalar] = Field(default_factory=dict, description="extra labels, copied verbatim")
    policy: PolicySection | None = None
    inference: InferenceSection | None = None


def schema_text() -> str:
    """The JSON Schema of :class:`KernelSpec`, as committed in ``imagekit/schemas``."""
    schema = KernelSpec.model_json_schema(by_alias=True)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


# --------------------------------------------------------------------------- key -> line


_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY_PART = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_KEYLINE_RE = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART_RE = re.compile(_KEY_PART)
_STRINGS_RE = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def _parts(dotted: str) -> list[str]:
    out = []
    for m in _PART_RE.finditer(dotted):
        p = m.group(0)
        out.append(json.loads(p) if p.startswith('"') else p.strip("'"))
    return out


def key_lines(text: str) -> dict[str, int]:
    """Map ``"table.key"`` (parts joined by ``.``) to the 1-based line that defines it.

    A light scan, not a parser: table headers and ``key =`` lines at the start of a
    line, skipping the insides of multi-line strings and arrays.
    """
    lines: dict[str, int] = {}
    table: list[str] = []
    depth = 0
    in_multi: str | None = None
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if in_multi:
            if in_multi in line:
                line = line.split(in_multi, 1)[1]
                in_multi = None
            else:
                continue
        if depth == 0:
            header = _HEADER_RE.match(line)
            keyline = None if header else _KEYLINE_RE.match(line)
            if header:
                table = _parts(header.group(1))
                lines.setdefault(".".join(table), no)
                continue
            if keyline:
                lines.setdefault(".".join(table + _parts(keyline.group(1))), no)
        rest = _STRINGS_RE.sub('""', line)  # complete strings emptied; an open triple quote stays
        for quote in ('"""', "'''"):
            if quote in rest:
                in_multi = quote
                rest = rest.split(quote, 1)[0]
        rest = rest.split("#", 1)[0]
        depth = max(0, depth + rest.count("[") + rest.count("{") - rest.count("]") - rest.count("}"))
    return lines


def line_of(lines: dict[str, int], path: tuple[str | int, ...] | list[str | int]) -> int | None:
    """The line of *path*, or of its nearest enclosing key/table that has one."""
    parts = [str(p) for p in path if not isinstance(p, int)]
    while parts:
        key = ".".join(parts)
        if key in lines:
            return lines[key]
        parts.pop()
    return None


# --------------------------------------------------------------------------- loading


class SpecError(UsageError):
    """``kernel.toml`` cannot be used; each problem has a location."""

    def __init__(self, problems: list[tuple[Location, str]]) -> None:
        self.problems = problems
        super().__init__("invalid kernel spec:\n" + "\n".join(f"  {loc}: {msg}" for loc, msg in problems))


@dataclass(frozen=True)
class ServiceSelection:
    """A service the image will offer: its label entry and its def file source."""

    name: str
    protocol: str
    ports: tuple[int, ...]
    def_path: Path | None  # host file to copy; None: no def (preopen/pty, or missing)
    source: str  # "library", "file" (explicit def), "dir" (service-defs/NAME.json found), "none"
    location: Location | None = None

    @property
    def port_entry(self) -> str:
        portspec = str(self.ports[0]) if len(self.ports) == 1 else "[" + ",".join(map(str, self.ports)) + "]"
        return f"{self.name}:{self.protocol}:{portspec}"


@dataclass(frozen=True)
class PolicyChoice:
    kind: Literal["default", "file", "none"]
    path: Path | None = None
    location: Location | None = None


@dataclass
class LoadedSpec:
    path: Path
    spec: KernelSpec
    labels: dict[str, str] = field(default_factory=dict)
    label_locations: dict[str, Location] = field(default_factory=dict)
    services: list[ServiceSelection] = field(default_factory=list)
    policy: PolicyChoice = field(default_factory=lambda: PolicyChoice("default"))


def _scalar(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _flatten(prefix: str, values: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out.extend((f"{key}.{sub}", _scalar(v)) for sub, v in value.items())
        else:
            out.append((key, _scalar(value)))
    return [(f"{prefix}{k}", v) for k, v in out]


class _Builder:
    """Turns a validated :class:`KernelSpec` into labels (with locations), services and policy."""

    def __init__(self, path: Path, display: str, lines: dict[str, int]) -> None:
        self.path, self.display, self.lines = path, display, lines
        self.labels: dict[str, str] = {}
        self.locations: dict[str, Location] = {}
        self.problems: list[tuple[Location, str]] = []

    def loc(self, *path: str) -> Location:
        return Location(file=self.display, line=line_of(self.lines, path))

    def set(self, label: str, value: str, *path: str) -> None:
        if label in self.labels:
            self.problems.append((self.loc(*path), f"label {label} is already set by {self.locations[label]}"))
            return
        self.labels[label] = value
        self.locations[label] = self.loc(*path)

    def kernel(self, k: KernelSection) -> None:
        self.set(KERNELSPEC_LABEL, str(k.kernelspec), "kernel", "kernelspec")
        simple = {
            "runtime-type": k.runtime_type,
            "runtime-path": k.runtime_path,
            "base-distro": k.base_distro,
            "role": k.role,
        }
        for key, value in simple.items():
            if value is not None:
                self.set(f"ai.backend.{key}", value, "kernel", key)
        if k.features is not None:
            self.set(FEATURES_LABEL, " ".join(k.features), "kernel", "features")
        if k.runner is not None:
            self.set(RUNNER_LABEL, k.runner, "kernel", "runner")
        if k.accelerators is not None:
            self.set(ACCELERATORS_LABEL, ",".join(k.accelerators), "kernel", "accelerators")
        if k.corecount_envs is not None:
            self.set(CORECOUNT_LABEL, ",".join(k.corecount_envs), "kernel", "corecount-envs")

    def resources(self, r: ResourcesSection) -> None:
        for kind, values in (("min", r.min), ("max", r.max)):
            for label, value in _flatten(f"ai.backend.resource.{kind}.", values):
                self.set(label, value, "resources", kind, *label.split(".")[4:])
        if r.preferred is not None and r.preferred.shmem is not None:
            self.set(SHMEM_LABEL, str(r.preferred.shmem), "resources", "preferred", "shmem")

    def inference(self, spec: KernelSpec) -> None:
        inf = spec.inference
        if inf is None:
            return
        if spec.kernel.role not in (None, "INFERENCE"):
            self.problems.append((self.loc("kernel", "role"), "[inference] needs role INFERENCE (or no role)"))
        elif spec.kernel.role is None:
            self.set(ROLE_LABEL, "INFERENCE", "inference")
        self.set(ENDPOINT_PORTS_LABEL, ",".join(inf.endpoint_ports), "inference", "endpoint-ports")
        self.set(MODEL_PATH_LABEL, inf.model_path, "inference", "model-path")
        self.set(MODEL_FORMAT_LABEL, inf.model_format, "inference", "model-format")

    def service(self, name: str, entry: ServiceEntry) -> ServiceSelection | None:
        loc = self.loc("services", name)
        base = self.path.parent
        library = entry.library if isinstance(entry.library, str) else (name if entry.library else None)
        if library:
            def_path: Path | None = library_dir() / f"{library}.json"
            if not def_path.is_file():
                known = ", ".join(library_names()) or "none"
                self.problems.append((loc, f"no library service-def {library!r} (known: {known})"))
                return None
            source = "library"
        elif entry.def_ is not None:
            def_path = (base / entry.def_).resolve()
            if not def_path.is_file():
                self.problems.append((loc, f"service-def file {entry.def_} does not exist"))
                return None
            source = "file"
        else:
            candidate = base / "service-defs" / f"{name}.json"
            def_path, source = (candidate, "dir") if candidate.is_file() else (None, "none")
        port = entry.port
        if port is None and entry.ports is None:
            port = LIBRARY_PORTS.get(library or "")
            if port is None:
                self.problems.append((loc, f"service {name!r} needs a 'port' (or 'ports')"))
                return None
        ports = tuple(entry.ports) if entry.ports is not None else (port,)
        return ServiceSelection(name, entry.protocol, ports, def_path, source, loc)

    def policy(self, p: PolicySection | None) -> PolicyChoice:
        if p is None or p.default:
            return PolicyChoice("default", location=self.loc("policy") if p else None)
        if p.file is None:
            return PolicyChoice("none", location=self.loc("policy"))
        path = (self.path.parent / p.file).resolve()
        if not path.is_file():
            self.problems.append((self.loc("policy", "file"), f"policy file {p.file} does not exist"))
        return PolicyChoice("file", path, self.loc("policy", "file"))


def _validation_problems(exc: ValidationError, display: str, lines: dict[str, int]) -> list[tuple[Location, str]]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = Location(file=display, line=line_of(lines, loc))
        dotted = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            section = ".".join(str(p) for p in loc[:-1])
            problems.append((where, f"unknown key {loc[-1]!r}" + (f" in [{section}]" if section else "")))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((where, f"{dotted}: {msg}" if dotted else msg))
    return problems


def parse_spec(text: str, path: Path, display: str | None = None) -> LoadedSpec:
    """Validate the text of a spec file at *path* (relative paths in it resolve against its directory)."""
    display = display or str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)(?:, column (\d+))?", str(exc))
        loc = Location(file=display, line=int(m.group(1)) if m else None, column=int(m.group(2)) if m and m.group(2) else None)
        raise SpecError([(loc, f"TOML syntax error: {exc}")]) from None
    lines = key_lines(text)
    try:
        spec = KernelSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_validation_problems(exc, display, lines)) from None
    b = _Builder(path, display, lines)
    b.kernel(spec.kernel)
    b.resources(spec.resources)
    b.inference(spec)
    services = [s for name, entry in spec.services.items() if (s := b.service(name, entry)) is not None]
    if spec.services:
        b.set(SERVICE_PORTS_LABEL, ",".join(s.port_entry for s in services), "services")
    for key, value in spec.labels.items():
        b.set(key, _scalar(value), "labels", key)
    policy = b.policy(spec.policy)
    if b.problems:
        raise SpecError(b.problems)
    return LoadedSpec(path, spec, b.labels, b.locations, services, policy)


def load_spec(path: str | Path, display: str | None = None) -> LoadedSpec:
    """Read and validate ``kernel.toml``; raises :class:`SpecError` (exit 2) with file:line problems."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read kernel spec {path}: {exc}") from exc
    return parse_spec(text, path, display)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        ok = SCHEMA_PATH.is_file() and SCHEMA_PATH.read_text() == schema_text()
        print("up to date" if ok else f"{SCHEMA_PATH} is stale; run python -m imagekit.kernelspec")
        return 0 if ok else 1
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
