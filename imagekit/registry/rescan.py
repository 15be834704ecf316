"""What the Backend.AI manager's registry rescan concludes for each platform of a tag.

Written from the facts of upstream's rescan (``manager/container_registry/base.py``,
``common/docker.py``, ``common/service_ports.py``, Backend.AI 26.8; docs/registry.md has the
details and the versions), not from its code:

* the manifest is asked for with the Docker v2 / manifest-list / OCI manifest / OCI index types;
  a 404 is a missing tag (ignored); any other type fails the tag;
* an OCI index entry that carries ``annotations`` is skipped (that is how attestation manifests
  are told apart); entries are keyed by architecture (``amd64`` → ``x86_64``, ``arm64`` →
  ``aarch64`` …), so a later entry of the same architecture replaces an earlier one;
* labels come from the config blob's ``config.Labels``, else ``container_config.Labels``; none
  at all means a plain (vanilla) image;
* the labels must pass the manager's label schema (kernelspec 1, features without blank items,
  non-blank runtime-type and base-distro, a known role, service-ports it can read with supported
  protocols and allowed ports, and for INFERENCE images the endpoint/model labels), else the
  platform is skipped;
* with ``ai.backend.kernelspec`` the accelerators are the ``ai.backend.accelerators`` items plus the
  slot families of ``ai.backend.resource.{min,max}.*`` keys other than cpu/mem (a key without a slot
  name raises and stops the tag); without it the image allows every accelerator (``*``);
* the size is the sum of the compressed layer sizes plus the config blob's size;
* the tag must be a slug whose ``-``-separated parts after the first are platform tags
  (letters, then an optional version), each kind once; and the repository must be the registry's
  project or below it. Otherwise the platform is skipped when the rescan commits.
"""

from __future__ import annotations

import enum
import re

from pydantic import BaseModel, ConfigDict, Field

from krunner.contract import ACCELERATORS_LABEL, KERNELSPEC_LABEL

ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64", "x32": "x86", "i686": "x86"}
INTRINSIC_SLOTS = ("cpu", "mem")
PROTOCOLS = ("tcp", "http", "preopen", "vnc", "rdp")
RESERVED_PORTS = (2000, 2001, 2002, 2003, 2200, 7681)
ROLES = ("COMPUTE", "INFERENCE", "SYSTEM")
RESOURCE_PREFIXES = ("ai.backend.resource.min", "ai.backend.resource.max")

_PORTS_ITEM = re.compile(r"^(?P<name>[\w-]+):(?P<proto>\w+):(?P<ports>\[\d+(?:,\d+)*\]|\d+)(?:,|$)")
_SLUG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-._]*[A-Za-z0-9])?$")
_PLATFORM_TAG = re.compile(r"^(?P<tag>[a-zA-Z_]+)(?P<version>\d+(?:\.\d+)*[a-z0-9]*)?$")


class Verdict(str, enum.Enum):
    KERNEL = "kernel"  # registered as a kernel image
    PLAIN = "plain"  # registered as a plain (vanilla) image: no ai.backend.kernelspec label
    SKIPPED = "skipped"  # not registered (the reason says why)
    FAILS = "fails"  # the rescan raises on this tag: an error in the rescan's result


class LayerInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    digest: str
    size: int
    media_type: str = ""
    created_by: str = ""  # the build step that made it (the config's history), when known


class PlatformView(BaseModel):
    """One platform of a tag, as the rescan sees it."""

    platform: str  # os/architecture[/variant] as the registry describes it
    architecture: str  # what the manager records (aliased)
    verdict: Verdict
    reason: str = ""
    manifest_digest: str | None = None
    config_digest: str | None = None
    accelerators: str | None = None  # what the manager stores: "*" for a plain image, None for none
    size: int = 0  # compressed layers + config, what the manager records
    layers: list[LayerInfo] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    cmd: list[str] | None = None
    #: a FAILS raised while the tag's manifests are still being read: nothing of the tag is registered
    fails_whole_tag: bool = False

    @property
    def registered(self) -> bool:
        return self.verdict in (Verdict.KERNEL, Verdict.PLAIN)


class ImageView(BaseModel):
    """One tag: its manifest and every platform's verdict (``error``: nothing could be read)."""

    reference: str
    registry: str
    repository: str
    tag: str | None
    digest: str | None = None
    media_type: str | None = None
    platforms: list[PlatformView] = Field(default_factory=list)
    error: str | None = None
    missing: bool = False  # listed, but there is no manifest (the manager ignores such tags)

    def summary(self) -> str:
        """``kernel``, ``plain``, ``skipped`` … or per architecture when the platforms differ."""
        if self.missing:
            return "missing"
        if self.error and not self.platforms:
            return "fails"
        verdicts = {p.verdict.value for p in self.platforms}
        if len(verdicts) == 1:
            return verdicts.pop()
        return ", ".join(f"{p.architecture}: {p.verdict.value}" for p in self.platforms)


def alias_arch(arch: str) -> str:
    return ARCH_ALIASES.get(arch, arch)


def oci_manifest_arch(config_arch: str | None, tag: str) -> str:
    """The architecture of a single OCI manifest: its config's, else guessed from the tag like the manager."""
    if config_arch:
        return alias_arch(config_arch)
    return "aarch64" if tag.endswith(("-arm64", "-aarch64")) else "x86_64"


# ------------------------------------------------------------------------------------ labels


def _blank_items(value: str, delimiter: str) -> bool:
    return any(item == "" for item in value.split(delimiter))


def _service_ports(value: str) -> tuple[dict[str, str], str | None]:
    """The manager's reading of service-ports: (name -> protocol, the error that skips the image)."""
    names: dict[str, str] = {}
    used: set[int] = set()
    for piece in value.split(","):
        m = _PORTS_ITEM.search(piece)
        if not m:
            continue  # pieces it cannot read are dropped silently
        proto = m.group("proto")
        if proto == "pty":
            continue
        if proto not in PROTOCOLS:
            return names, f"service-ports: unsupported protocol {proto!r}"
        for port in (int(p) for p in m.group("ports").strip("[]").split(",")):
            if port in used:
                return names, f"service-ports: port {port} is used twice"
            if port <= 1024:
                return names, f"service-ports: port {port} is not above 1024"
            if port >= 65535:
                return names, f"service-ports: port {port} is not below 65535"
            if port in RESERVED_PORTS:
                return names, f"service-ports: port {port} is reserved (2000-2003, 2200, 7681)"
            used.add(port)
        names[m.group("name")] = proto
    return names, None


def label_skip_reason(labels: dict[str, str]) -> str | None:
    """Why the manager's label schema rejects *labels* (the platform is skipped), or None."""
    spec = labels.get(KERNELSPEC_LABEL)
    if spec is not None:
        try:
            if int(spec) != 1:
                return f"ai.backend.kernelspec is {spec!r}, only 1 is accepted"
        except ValueError:
            return f"ai.backend.kernelspec {spec!r} is not an integer"
    features = labels.get("ai.backend.features")
    if features is not None and _blank_items(features, " "):
        return "ai.backend.features has a blank item (empty value, or a doubled, leading or trailing space)"
    for key in ("ai.backend.runtime-type", "ai.backend.base-distro"):
        if labels.get(key) == "":
            return f"{key} is blank"
    role = labels.get("ai.backend.role", "COMPUTE")
    if role not in ROLES:
        return f"ai.backend.role {role!r} is not one of {', '.join(ROLES)}"
    ports, problem = _service_ports(labels.get("ai.backend.service-ports", ""))
    if problem:
        return problem
    if role == "INFERENCE":
        for key in ("ai.backend.endpoint-ports", "ai.backend.model-path", "ai.backend.model-format"):
            if key not in labels:
                return f"INFERENCE image without {key}"
        endpoints = labels["ai.backend.endpoint-ports"]
        if _blank_items(endpoints, ","):
            return "ai.backend.endpoint-ports has a blank item"
        if labels["ai.backend.model-format"] == "":
            return "ai.backend.model-format is blank"
        for name in endpoints.split(","):
            if name not in ports:
                return f"endpoint port {name!r} is not a service port the manager can read"
            if ports[name] != "preopen":
                return f"endpoint port {name!r} is not a preopen service port"
    return None


def accelerators(labels: dict[str, str]) -> tuple[str | None, str | None]:
    """(what the manager stores as the image's accelerators, the error if reading them raises).

    The manager builds a set, so its order is arbitrary; here the items are sorted."""
    if KERNELSPEC_LABEL not in labels:
        return "*", None
    found: set[str] = set()
    if labels.get(ACCELERATORS_LABEL):
        found |= set(labels[ACCELERATORS_LABEL].split(","))
    for key in labels:
        if key.startswith(RESOURCE_PREFIXES):
            parts = key.split(".")
            if len(parts) < 5:
                return None, f"{key} has no slot name: reading the accelerators raises (IndexError)"
            if parts[4] not in INTRINSIC_SLOTS:
                found.add(parts[4])
    return (",".join(sorted(found)) or None), None


def tag_skip_reason(tag: str | None) -> str | None:
    """Why the manager cannot make an image reference of *tag* (skipped when the rescan commits)."""
    if tag is None:
        return None
    if not _SLUG.match(tag):
        return f"tag {tag!r} is not a slug (letters, digits, '-', '.', '_'; alphanumeric at both ends)"
    seen: set[str] = set()
    for part in tag.split("-")[1:]:
        m = _PLATFORM_TAG.match(part)
        if m is None:
            return (f"tag {tag!r}: {part!r} is not a platform tag (after the version, each '-' part must be "
                    "letters followed by an optional version, e.g. py312 or ubuntu22.04)")
        if m.group("tag") in seen:
            return f"tag {tag!r}: the platform tag {m.group('tag')!r} appears twice"
        seen.add(m.group("tag"))
    return None


def project_skip_reason(repository: str, project: str | None) -> str | None:
    if not project or repository == project or repository.startswith(project + "/"):
        return None
    return f"repository {repository!r} is not in the registry's project {project!r}"


def decide(labels: dict[str, str], *, tag: str | None, repository: str,
           project: str | None = None) -> tuple[Verdict, str, str | None]:
    """(verdict, reason, accelerators) for one platform with *labels*."""
    reason = label_skip_reason(labels)
    if reason:
        return Verdict.SKIPPED, reason, None
    accels, error = accelerators(labels)
    if error:
        return Verdict.FAILS, error, None
    reason = tag_skip_reason(tag) or project_skip_reason(repository, project)
    if reason:
        return Verdict.SKIPPED, reason, None
    if KERNELSPEC_LABEL in labels:
        return Verdict.KERNEL, "", accels
    return Verdict.PLAIN, "no ai.backend.kernelspec label: registered as a plain image", accels
