"""Registry images as validation targets: one :class:`RegistryTarget` per platform of a tag.

Each platform's labels come from its config blob; unless ``labels_only``, its files come from a
:class:`~.layers_fs.LayersFS` (the layers downloaded to a temporary directory, which stays open for
the content rules while the caller's :class:`~contextlib.ExitStack` is open). The registry rules
(BAI315–BAI319) are the front-end findings.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from ..console import progress
from ..errors import EnvironmentProblem
from ..findings import Finding, Location, sorted_findings
from ..kernel_inputs import KernelInputs
from ..rules import registry_image as rules
from ..targets import LoadedTarget, _read_image_files
from . import DEFAULT_TIMEOUT
from .client import RegistryClient
from .layers_fs import open_layers_fs
from .oci_layout import OciLayoutClient, open_layout
from .reference import ImageReference, parse_reference
from .rescan import ImageView, PlatformView, Verdict
from .view import read_image


class RegistryOptions(BaseModel):
    """How to reach registries and what to check (the command line's, or a config file's)."""

    insecure: bool = False
    timeout: float = DEFAULT_TIMEOUT
    max_size: int | None = None  # bytes; BAI315 when set
    labels_only: bool = False  # do not download layers: no content rules
    platforms: list[str] = Field(default_factory=list)  # only these (os/arch[/variant] or arch); empty: all
    project: str | None = None  # the registry's project the manager was configured with


@dataclass
class RegistryTarget(LoadedTarget):
    """One platform of a registry image (or, with ``platform`` None, the tag itself when nothing can be read)."""

    image: ImageView | None = None
    platform: PlatformView | None = None

    def rule_findings(self) -> list[Finding]:
        if self.platform is None or self.platform.config_digest is None:
            return sorted_findings(self.frontend)  # no labels to check: only what the rescan says
        return super().rule_findings()


class ClientPool:
    """One client per registry host, closed together."""

    def __init__(self, options: RegistryOptions) -> None:
        self.options = options
        self._clients: dict[str, RegistryClient] = {}

    def get(self, host: str) -> RegistryClient:
        if host not in self._clients:
            self._clients[host] = RegistryClient(host, insecure=self.options.insecure, timeout=self.options.timeout)
        return self._clients[host]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def _wanted(platform: PlatformView, wanted: list[str]) -> bool:
    return not wanted or any(w in (platform.platform, platform.architecture, platform.platform.split("/", 1)[-1])
                             for w in wanted)


def rescan_findings(image: ImageView, platform: PlatformView | None, where: Location) -> list[Finding]:
    """BAI317–BAI319 for one platform (or for the tag as a whole when *platform* is None)."""
    if platform is None:
        return [rules.RESCAN_FAILS.finding(image.error or "the rescan cannot read this tag", location=where)]
    if platform.verdict is Verdict.FAILS:
        return [rules.RESCAN_FAILS.finding(f"{platform.platform}: {platform.reason}", location=where)]
    if platform.verdict is Verdict.SKIPPED and platform.reason.startswith(("tag ", "repository ")):
        return [rules.TAG_SKIPPED.finding(f"the rescan skips {platform.platform}: {platform.reason}", location=where)]
    if platform.verdict is Verdict.SKIPPED and platform.reason.startswith("replaced by"):
        return [rules.ENTRY_IGNORED.finding(f"{platform.platform}: {platform.reason}", location=where)]
    if platform.verdict is Verdict.SKIPPED and platform.reason.startswith(("not registered", "not reached")):
        return [rules.RESCAN_FAILS.finding(f"{platform.platform}: {platform.reason}", location=where)]
    return []


def targets_for_view(image: ImageView, name: str, options: RegistryOptions) -> list[RegistryTarget]:
    """The targets of one image (no files read yet)."""
    where = Location(file=name)
    if image.error and not image.platforms:
        inputs = KernelInputs(target=name, labels={}, default_location=where)
        return [RegistryTarget("registry", inputs, rescan_findings(image, None, where), image=image)]
    readable = [p for p in image.platforms if p.config_digest is not None and _wanted(p, options.platforms)]
    if options.platforms and not readable:
        have = ", ".join(p.platform for p in image.platforms if p.config_digest is not None) or "none"
        raise EnvironmentProblem(f"{name} has no platform {', '.join(options.platforms)} (it has: {have})")
    several = len([p for p in image.platforms if p.config_digest is not None]) > 1
    out: list[RegistryTarget] = []
    first = readable[0] if readable else None
    for platform in image.platforms:
        if platform.config_digest is None:
            if platform.verdict is Verdict.FAILS and not options.platforms:  # a reason the whole tag fails
                inputs = KernelInputs(target=f"{name} ({platform.platform})", labels={}, default_location=where)
                out.append(RegistryTarget("registry", inputs, rescan_findings(image, platform, where),
                                          image=image, platform=platform))
            continue
        if platform not in readable:
            continue
        target = f"{name} ({platform.platform})" if several else name
        loc = Location(file=target)
        inputs = KernelInputs(target=target, labels=dict(platform.labels), default_location=loc)
        front = rescan_findings(image, platform, loc)
        front += rules.size_findings(platform.size, platform.layers, options.max_size, loc)
        if first is not None and platform is not first:
            diffs = rules.label_differences(first.labels, platform.labels)
            if diffs:
                front.append(rules.labels_differ_finding(platform.platform, first.platform, diffs, loc))
        out.append(RegistryTarget("registry", inputs, front, image=image, platform=platform))
    return out


def load_registry_image(name: str, options: RegistryOptions, stack: ExitStack,
                        pool: ClientPool | None = None) -> list[RegistryTarget]:
    """Read *name* (``REGISTRY/REPO:TAG``) and return its targets; layer filesystems live in *stack*."""
    ref: ImageReference = parse_reference(name)
    if pool is None:
        pool = ClientPool(options)
        stack.callback(pool.close)
    client = pool.get(ref.api_host)
    image = read_image(client, ref, options.project)
    return _with_files(targets_for_view(image, name, options), client, ref, name, options, stack)


def load_oci_layout(name: str, options: RegistryOptions, stack: ExitStack) -> list[RegistryTarget]:
    """Read *name* (``oci-layout:DIR[:TAG]`` or ``oci-archive:FILE[:TAG]``) like a registry image.
    The rescan's tag and project skip rules are registry-only: they do not apply to a layout."""
    client, ref = open_layout(name, stack)
    image = read_image(client, ref)  # type: ignore[arg-type]  # the client subset view.py uses
    image.reference, image.registry = name, "oci-layout"
    return _with_files(targets_for_view(image, name, options), client, ref, name, options, stack)


def _with_files(targets: list[RegistryTarget], client: RegistryClient | OciLayoutClient, ref: ImageReference,
                name: str, options: RegistryOptions, stack: ExitStack) -> list[RegistryTarget]:
    """Each platform's files from its layers (unless ``labels_only``); the filesystems live in *stack*."""
    if options.labels_only:
        return targets
    blobs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bai-imagekit-layers-")))
    for target in targets:
        platform = target.platform
        if platform is None or platform.config_digest is None:
            continue
        if len(targets) > 1:
            progress(f"{name}: reading the files of {platform.platform}")
        # a layer shared by platforms is fetched once
        fs = stack.enter_context(open_layers_fs(client, ref.repository, platform.layers,  # type: ignore[arg-type]
                                                progress=progress, workdir=blobs))
        _read_image_files(target.inputs, fs)
        target.inputs.image_fs = fs
    return targets
