"""Turn what the user named into :class:`~imagekit.kernel_inputs.KernelInputs` (plus front-end findings).

Target kinds (auto-detected by :func:`detect_kind`, or forced):

``image``
    A local image reference, read through the Docker engine (``DOCKER_HOST`` honoured). Labels
    come from the image config; service-def files and the jail policy are read from the image's
    filesystem (:mod:`imagekit.imagefs`), which stays open for the content rules while the
    :func:`open_targets` block runs.
``dockerfile``
    A Dockerfile: the last stage's labels with their lines (:mod:`imagekit.dockerfile`), the
    service-defs and jail policy its COPY/ADD instructions take from the build context (the
    Dockerfile's directory), and its inline suppressions.
``kernel-dir``
    A directory with a ``Dockerfile`` and/or ``kernel.toml`` (labels from the spec win over the
    Dockerfile's), ``service-defs/*.json`` and ``policy.yml`` / ``jail-policy.yml``.
``model-dir``
    A model folder: ``model-definition.yaml`` (and optionally ``deployment-config.yaml``), no
    Dockerfile or ``kernel.toml``. Checked by :mod:`imagekit.rules.model_definition`; named together
    with image-like targets it is checked against each of them (their labels, an image's ``Cmd``).
``registry``
    An image in a registry (``REGISTRY/REPO:TAG``; detected when the first component is a host – it
    has a ``.`` or ``:`` or is ``localhost`` – or forced with ``--from-registry``). Read over the
    registry's HTTP API, never through the engine (:mod:`imagekit.registry`): one target per
    platform, with the rescan's verdict (:mod:`imagekit.registry.target`).
``oci-layout``
    A local multi-platform image as an OCI image layout: ``oci-layout:DIR[:TAG]`` or
    ``oci-archive:FILE.tar[:TAG]`` (detected by the prefix). Read like a ``registry`` image, from
    the layout's blobs (:mod:`imagekit.registry.oci_layout`).
``labels-json``
    ``docker inspect`` output (a list of image objects; ``Config.Labels``, falling back to
    ``ContainerConfig.Labels`` like the manager does) or a plain ``{"label": "value"}`` object.
    Each image object of a list is its own target.

Every loader returns :class:`LoadedTarget`: the inputs for the rules, and the findings of reading
the target (Dockerfile problems, BAI5xx), which :meth:`LoadedTarget.findings` merges with the
rules' findings.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from krunner.contract import JAIL_DIR, SERVICE_DEFS_DIR
from krunner.contract import JAIL_POLICY_PATH as POLICY_PATH

from .dockerfile import Dockerfile, Problem, files_placed_in, parse_file
from .errors import EnvironmentProblem, UsageError
from .findings import Finding, Location, display_path, sorted_findings
from .kernel_inputs import ImageFS, KernelInputs, ServiceDefSource

KINDS = ("image", "dockerfile", "kernel-dir", "labels-json", "model-dir", "registry", "oci-layout")
DOCKERFILE_NAMES = ("Dockerfile", "Containerfile")
SPEC_NAME = "kernel.toml"
POLICY_NAMES = ("policy.yml", "jail-policy.yml")


@dataclass
class LoadedTarget:
    kind: str
    inputs: KernelInputs
    frontend: list[Finding] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inputs.target

    def findings(self) -> list[Finding]:
        """:meth:`rule_findings` with the project's rule configuration applied (severity overrides,
        disabled rules: :mod:`imagekit.config.rules`). Subclasses override :meth:`rule_findings`."""
        from .config.rules import apply_active

        return apply_active(self.rule_findings())

    def rule_findings(self) -> list[Finding]:
        """Rule findings plus front-end findings, suppressions applied, every finding located, sorted."""
        from .rules.dockerfile_rules import UNSUPPRESSIBLE
        from .validate import check

        front = [f for f in self.frontend if f.rule in UNSUPPRESSIBLE or not self.inputs.is_suppressed(f)]
        fallback = self.inputs.default_location or Location(file=self.inputs.target)
        seen: set[tuple] = set()
        out: list[Finding] = []
        for f in [*check(self.inputs), *front]:
            if f.location is None:
                f = f.model_copy(update={"location": fallback})
            key = (f.rule, f.location, f.message)
            if key not in seen:
                seen.add(key)
                out.append(f)
        return sorted_findings(out)


# ------------------------------------------------------------------------------------ detection

_PATHLIKE = re.compile(r"(^[./~])|(\.(json|toml|ya?ml|dockerfile)$)|((^|/)(Docker|Container)file[^/]*$)", re.IGNORECASE)


def detect_kind(name: str) -> str:
    """The kind of target *name* names; a path-like name that does not exist is a usage error."""
    from .registry.oci_layout import is_layout_name

    if is_layout_name(name):
        return "oci-layout"
    path = Path(name)
    if path.is_dir():
        return "model-dir" if _is_model_dir(path) else "kernel-dir"
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "labels-json"
        try:
            head = path.read_bytes()[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc}") from exc
        return "labels-json" if head[:1] in (b"[", b"{") else "dockerfile"
    from .registry.reference import looks_like_registry_reference

    if looks_like_registry_reference(name):
        return "registry"
    if _PATHLIKE.search(name) or os.sep + os.sep in name:
        raise UsageError(f"{name}: no such file or directory")
    return "image"


# ------------------------------------------------------------------------------------ helpers


def _read_def(name: str, path: Path) -> ServiceDefSource:
    loc = Location(file=display_path(path))
    try:
        return ServiceDefSource(name, loc, path.read_text(encoding="utf-8"), host_path=path)
    except (OSError, UnicodeDecodeError) as exc:
        return ServiceDefSource(name, loc, None, error=str(exc), host_path=path)


def _suppression_map(doc: Dockerfile) -> dict[str, list[int | None]]:
    out: dict[str, list[int | None]] = {}
    for sup in doc.suppressions:
        for rule_id in sup.rules:
            out.setdefault(rule_id, []).extend([None] if sup.lines is None else sup.lines)
    return out


# ------------------------------------------------------------------------------------ Dockerfile


@dataclass
class _DockerfileView:
    doc: Dockerfile
    service_defs: dict[str, ServiceDefSource] | None
    policy_text: str | None
    policy_location: Location | None
    problems: list[Problem]


def _view(path: Path, display: str) -> _DockerfileView:
    try:
        doc = parse_file(path, display)
    except OSError as exc:
        raise UsageError(f"cannot read {display}: {exc}") from exc
    context = path.parent
    placed, problems = files_placed_in(doc, SERVICE_DEFS_DIR, context)
    defs: dict[str, ServiceDefSource] | None = {}
    if any(p.kind == "unknowable" for p in problems):
        defs = None
    else:
        for fname, item in sorted(placed.items()):
            if not fname.endswith(".json"):
                continue
            name = fname[: -len(".json")]
            if item.source is not None:
                defs[name] = _read_def(name, item.source)
            else:
                defs[name] = ServiceDefSource(name, Location(file=display, line=item.text_line), item.text)
    jail, jail_problems = files_placed_in(doc, JAIL_DIR, context)
    problems += jail_problems
    policy_text, policy_loc = None, None
    item = jail.get("policy.yml")
    if item is not None and not any(p.kind == "unknowable" for p in jail_problems):
        if item.source is not None:
            policy_loc = Location(file=display_path(item.source))
            try:
                policy_text = item.source.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                policy_text = None
        else:
            policy_text, policy_loc = item.text, Location(file=display, line=item.text_line)
    return _DockerfileView(doc, defs, policy_text, policy_loc, problems)


def load_dockerfile(path: Path | str, display: str | None = None) -> LoadedTarget:
    from .rules.dockerfile_rules import findings_for

    path = Path(path)
    display = display or display_path(path)
    if not path.is_file():
        raise UsageError(f"{display}: no such file")
    view = _view(path, display)
    final = view.doc.final_stage
    inputs = KernelInputs(
        target=display,
        labels={k: v.value for k, v in view.doc.labels.items()},
        label_locations={k: Location(file=display, line=v.line) for k, v in view.doc.labels.items()},
        default_location=Location(file=display, line=final.line if final else None),
        service_defs=view.service_defs,
        policy_text=view.policy_text,
        policy_location=view.policy_location,
        suppressions=_suppression_map(view.doc),
        suppression_file=display,
    )
    return LoadedTarget("dockerfile", inputs, findings_for(view.doc, view.problems))


# ------------------------------------------------------------------------------------ kernel dir


def load_kernel_dir(path: Path | str) -> LoadedTarget:
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"{path}: no such directory")
    dockerfile = next((root / n for n in DOCKERFILE_NAMES if (root / n).is_file()), None)
    spec_path = root / SPEC_NAME
    if dockerfile is None and not spec_path.is_file():
        raise UsageError(f"{path}: neither a Dockerfile nor {SPEC_NAME} in this directory")
    if dockerfile is not None:
        loaded = load_dockerfile(dockerfile)
        inputs, frontend = loaded.inputs, loaded.frontend
        inputs.target = display_path(root)
    else:
        inputs, frontend = KernelInputs(target=display_path(root), labels={}, service_defs={}), []
    defs: dict[str, ServiceDefSource] = dict(inputs.service_defs or {})
    if spec_path.is_file():
        _apply_spec(inputs, spec_path, defs)
    else:
        for file in sorted((root / "service-defs").glob("*.json")):
            if file.is_file():
                defs[file.stem] = _read_def(file.stem, file)
        if inputs.service_defs is not None or defs:
            inputs.service_defs = defs
    policy = next((root / n for n in POLICY_NAMES if (root / n).is_file()), None)
    if policy is not None and inputs.policy_text is None:
        _set_policy(inputs, policy)
    return LoadedTarget("kernel-dir", inputs, frontend)


def _apply_spec(inputs: KernelInputs, spec_path: Path, defs: dict[str, ServiceDefSource]) -> None:
    """Labels, defs and policy from ``kernel.toml`` (what ``bai-imagekit build`` adds)."""
    try:
        from .kernelspec import load_spec
    except ImportError:  # pragma: no cover - the spec reader is optional
        return
    spec = load_spec(spec_path, display_path(spec_path))  # SpecError is a UsageError: exit 2
    inputs.labels.update(spec.labels)
    inputs.label_locations.update(spec.label_locations)
    inputs.default_location = Location(file=display_path(spec_path))  # missing labels belong in the spec
    for service in getattr(spec, "services", []):
        if service.def_path is not None:
            defs[service.name] = _read_def(service.name, Path(service.def_path))
    inputs.service_defs = defs
    choice = getattr(spec, "policy", None)
    if choice is not None and choice.kind == "file" and choice.path is not None:
        _set_policy(inputs, Path(choice.path))


def _set_policy(inputs: KernelInputs, path: Path) -> None:
    inputs.policy_location = Location(file=display_path(path))
    try:
        inputs.policy_text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {inputs.policy_location.file}: {exc}") from exc


# ------------------------------------------------------------------------------------ label dump


def load_labels_json(path: Path | str) -> list[LoadedTarget]:
    path = Path(path)
    display = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read {display}: {exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{display} is not JSON: {exc}") from exc
    if isinstance(data, dict) and not _is_image_object(data):
        return [_from_label_map(data, text, 0, display, display)]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(i, dict) for i in items):
        raise UsageError(f"{display}: expected docker inspect output (a list of image objects) or a label object")
    out = []
    anchor = 0
    for index, item in enumerate(items):
        config = item.get("Config") or {}
        labels = config.get("Labels") or (item.get("ContainerConfig") or {}).get("Labels") or {}
        anchor = _find(text, '"Labels"', anchor)
        name = display if len(items) == 1 else f"{display}[{index}]"
        out.append(_from_label_map(labels, text, anchor, display, name))
        anchor += 1
    return out


def _is_image_object(data: dict[str, Any]) -> bool:
    return isinstance(data.get("Config"), dict) or "RepoTags" in data or "ContainerConfig" in data


def _from_label_map(labels: Any, text: str, anchor: int, display: str, name: str) -> LoadedTarget:
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise UsageError(f"{name}: labels must be an object of strings")
    locations = {}
    for key in labels:
        offset = _find(text, json.dumps(key), max(anchor, 0))
        if offset >= 0:
            locations[key] = Location(file=display, line=text.count("\n", 0, offset) + 1)
    inputs = KernelInputs(
        target=name, labels=dict(labels), label_locations=locations, default_location=Location(file=display)
    )
    return LoadedTarget("labels-json", inputs)


def _find(text: str, needle: str, start: int) -> int:
    found = text.find(needle, max(start, 0))
    return found if found >= 0 else start


# ------------------------------------------------------------------------------------ images


def docker_client():
    """A client for the engine named by the environment (``DOCKER_HOST`` …), checked to answer."""
    from .engine import connect

    return connect()


def _get_image(client, ref: str):
    from docker.errors import APIError, ImageNotFound

    try:
        return client.images.get(ref)
    except ImageNotFound as exc:
        raise EnvironmentProblem(f"image {ref} does not exist in the local engine (build or pull it first)") from exc
    except APIError as exc:
        raise EnvironmentProblem(f"cannot inspect image {ref}: {exc}") from exc


def inputs_from_image(client, ref: str, image_fs: ImageFS | None = None) -> KernelInputs:
    """An image's inputs. Files are read through *image_fs*; without one a scratch view is opened
    and closed here, and the returned inputs carry no ``image_fs`` (so content rules skip)."""
    image = _get_image(client, ref)
    attrs = image.attrs or {}
    labels = (attrs.get("Config") or {}).get("Labels") or (attrs.get("ContainerConfig") or {}).get("Labels") or {}
    inputs = KernelInputs(target=ref, labels=dict(labels), default_location=Location(file=ref))
    if image_fs is not None:
        _read_image_files(inputs, image_fs)
        inputs.image_fs = image_fs
        return inputs
    from .imagefs import open_image_fs

    with open_image_fs(client, ref) as fs:
        _read_image_files(inputs, fs)
    return inputs


def _read_image_files(inputs: KernelInputs, fs: ImageFS) -> None:
    names = fs.listdir(SERVICE_DEFS_DIR)
    defs: dict[str, ServiceDefSource] = {}
    for fname in sorted(names or []):
        path = f"{SERVICE_DEFS_DIR}/{fname}"
        if not fname.endswith(".json"):
            continue
        info = fs.stat(path)
        if info is None or info.kind != "file":
            continue
        name, loc = fname[: -len(".json")], Location(file=path)
        data = fs.read_bytes(path)
        try:
            defs[name] = ServiceDefSource(name, loc, None if data is None else data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            defs[name] = ServiceDefSource(name, loc, None, error=f"not UTF-8: {exc}")
    inputs.service_defs = defs
    policy = fs.read_bytes(POLICY_PATH)
    if policy is not None:
        inputs.policy_text = policy.decode("utf-8", errors="replace")
        inputs.policy_location = Location(file=POLICY_PATH)


# ------------------------------------------------------------------------------------ entry point


@contextmanager
def open_targets(
    names: list[str], kind: str | None = None, model_dirs: list[str] = (),  # type: ignore[assignment]
    registry: Any = None,
) -> Iterator[list[LoadedTarget]]:
    """Load every named target (and *model_dirs* as ``model-dir`` targets); image filesystems
    stay open until the block exits. *registry* (:class:`imagekit.registry.target.RegistryOptions`)
    says how registry images are read."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown target kind {kind!r} (choose from {', '.join(KINDS)})")
    with ExitStack() as stack:
        loaded: list[LoadedTarget] = []
        client = None
        pool = None
        for name in names:
            this = kind or detect_kind(name)
            if this == "registry":
                from .registry.target import (
                    ClientPool,
                    RegistryOptions,
                    load_registry_image,
                )

                options = registry or RegistryOptions()
                if pool is None:
                    pool = ClientPool(options)
                    stack.callback(pool.close)
                loaded.extend(load_registry_image(name, options, stack, pool))
            elif this == "oci-layout":
                from .registry.target import RegistryOptions, load_oci_layout

                loaded.extend(load_oci_layout(name, registry or RegistryOptions(), stack))
            elif this == "image":
                from .imagefs import open_image_fs

                client = client or docker_client()
                _get_image(client, name)  # a clear error before any container is created
                fs = stack.enter_context(open_image_fs(client, name))
                loaded.append(LoadedTarget("image", inputs_from_image(client, name, fs)))
            elif this == "dockerfile":
                loaded.append(load_dockerfile(name))
            elif this == "kernel-dir":
                loaded.append(load_kernel_dir(name))
            elif this == "model-dir":
                loaded.append(load_model_dir(name))
            else:
                if not Path(name).is_file():
                    raise UsageError(f"{name}: no such file")
                loaded.extend(load_labels_json(name))
        loaded += [load_model_dir(d) for d in model_dirs]
        yield pair_model_targets(loaded)


# ------------------------------------------------------------------------------------ model folders
# (kept apart: the model-dir kind only adds this section, a KINDS entry, a detect_kind case and
# one branch in open_targets)


def _is_model_dir(path: Path) -> bool:
    from krunner.services.model_definition import DEFINITION_NAMES

    has_kernel = any((path / n).is_file() for n in (*DOCKERFILE_NAMES, SPEC_NAME))
    return not has_kernel and any((path / n).is_file() for n in DEFINITION_NAMES)


@dataclass
class ModelTarget(LoadedTarget):
    """A model folder, optionally checked against one image-like target."""

    folder: Path = Path(".")
    image: Any = None  # imagekit.rules.model_definition.ImageContext | None

    def rule_findings(self) -> list[Finding]:
        from .rules.model_definition import check_folder

        found = check_folder(self.folder, self.image).findings
        return sorted_findings([f for f in found if not self.inputs.is_suppressed(f)])


def load_model_dir(path: Path | str, image: Any = None) -> ModelTarget:
    from krunner.services.model_definition import (
        DEFINITION_NAMES,
        DEPLOYMENT_CONFIG_NAME,
    )

    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"{path}: no such directory")
    if not any((root / n).is_file() for n in (*DEFINITION_NAMES, DEPLOYMENT_CONFIG_NAME)):
        raise UsageError(f"{path}: no {DEFINITION_NAMES[0]} in this directory")
    name = display_path(root) if image is None else f"{display_path(root)} (with {image.name})"
    inputs = KernelInputs(target=name, labels={}, default_location=Location(file=display_path(root)))
    return ModelTarget("model-dir", inputs, [], folder=root, image=image)


def _image_context(target: LoadedTarget):
    from .rules.model_definition import UNKNOWN_CMD, ImageContext

    cmd: Any = UNKNOWN_CMD
    if target.kind == "registry" and getattr(target, "platform", None) is not None:
        cmd = target.platform.cmd  # type: ignore[attr-defined]
    elif target.kind == "image":
        attrs = _get_image(docker_client(), target.name).attrs or {}
        cmd = (attrs.get("Config") or {}).get("Cmd") or None
    return ImageContext(target.name, dict(target.inputs.labels), dict(target.inputs.label_locations), cmd)


def pair_model_targets(loaded: list[LoadedTarget]) -> list[LoadedTarget]:
    """Model folders named together with images (or Dockerfiles, kernel dirs, label dumps) are
    checked against each of them instead of alone."""
    models = [t for t in loaded if isinstance(t, ModelTarget) and t.image is None]
    others = [t for t in loaded if not isinstance(t, ModelTarget)]
    if not models or not others:
        return loaded
    out: list[LoadedTarget] = list(others)
    for m in models:
        out += [load_model_dir(m.folder, _image_context(t)) for t in others]
    return out
