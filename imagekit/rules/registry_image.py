"""BAI315–BAI319: what only an image in a registry shows – its compressed size, its platforms and
what the Backend.AI manager's rescan makes of it (:mod:`imagekit.registry.rescan`).

These rules have no ``check(inputs)``: the registry front end (:mod:`imagekit.registry.target`)
reports them from the manifest and the rescan view, as front-end findings of each platform.
"""

from __future__ import annotations

import re

from ..errors import UsageError
from ..findings import Finding, Location
from .catalogue import rule

SUBJECT = "registry-image"
MATCHES = "Backend.AI 26.8 (manager/container_registry/base.py; verified against 26.8.1); see docs/registry.md for older versions"
TOP_LAYERS = 3

SIZE = rule(
    "BAI315", "error", "image is larger than its size budget",
    "Make the image smaller (the largest layers are named), or raise the budget (`--max-size`).",
    description="Only checked when a budget is given (`--max-size 2GiB`). The size is what the manager records "
    "at rescan: the compressed layers plus the config blob, as the manifest lists them – about what every agent "
    "downloads before a session of the image can start. The message names the largest layers and the build step "
    "that made each, so the step that makes a pull slow is easy to find.",
    subject=SUBJECT, matches=MATCHES,
)
LABELS_DIFFER = rule(
    "BAI316", "warning", "platforms of the image have different labels",
    "Build every platform from the same Dockerfile and kernel.toml, so that the labels agree.",
    description="The manager registers each architecture of a multi-platform tag as its own image with its own "
    "labels, so sessions on x86_64 and aarch64 agents would get different runtime types, service ports or "
    "resource minimums under one name.",
    subject=SUBJECT, matches=MATCHES,
)
TAG_SKIPPED = rule(
    "BAI317", "error", "the rescan skips the tag or repository name",
    "Tag as VERSION[-PLATFORMTAG…], e.g. `3.12-py312-ubuntu22.04`, and push below the registry's project.",
    description="When the rescan commits, the manager turns each tag into an image reference: the tag must be a "
    "slug and every `-`-separated part after the first must be a platform tag (letters, then an optional version, "
    "each kind once); a date such as `2024-06-01` is not. The repository must be the registry's project or below "
    "it. Otherwise every platform of the tag is skipped, with only a log line.",
    subject=SUBJECT, matches=MATCHES,
)
ENTRY_IGNORED = rule(
    "BAI318", "warning", "the rescan drops a platform of the index",
    "Give every platform of the index its own architecture, and no annotations on image entries.",
    description="The manager keys the platforms of a manifest list or OCI index by architecture (`amd64` and "
    "`x86_64` are the same), so of two entries with the same architecture (e.g. `linux/arm/v6` and "
    "`linux/arm/v7`, or a Windows and a Linux `amd64`) only the last is registered; it also skips every OCI "
    "index entry that carries annotations, which is meant for attestation manifests.",
    subject=SUBJECT, matches=MATCHES,
)
RESCAN_FAILS = rule(
    "BAI319", "error", "the rescan fails on this tag",
    "Push the image with a current Docker or BuildKit, as a Docker v2 or OCI manifest or index.",
    description="Some manifests make the manager's rescan raise instead of skipping: a media type it does not "
    "read, an index entry without a platform or pointing at another index, a Docker v2 config without an "
    "architecture, or a `ai.backend.resource.min`/`max` key without a slot name. The rescan then reports an "
    "error for the tag and registers none (or not all) of its platforms.",
    subject=SUBJECT, matches=MATCHES,
)

EXAMPLES: dict[str, str] = {
    "BAI315": "`--max-size 2GiB` with a 3.1 GiB image → remove build caches in the layer that makes them",
    "BAI317": "`my/kernel:2024-06-01` → `my/kernel:20240601` or `my/kernel:1.0-py312`",
}

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """``2GiB``, ``2g``, ``1500MB``, ``123456`` → bytes (K/M/G/T and KiB/MiB/… are binary, KB/MB/… decimal)."""
    m = _SIZE.match(text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise UsageError(f"size {text!r}: write a number with an optional unit, e.g. 2GiB, 500MiB, 1500MB")
    return int(float(m.group(1)) * _UNITS[unit])


def human_size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


def _step(created_by: str) -> str:
    text = re.sub(r"^/bin/sh -c (#\(nop\) )?", "", created_by).strip()
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= 70 else text[:67] + "..."


def size_findings(size: int, layers: list, budget: int | None, where: Location) -> list[Finding]:
    """BAI315 when *size* (bytes) exceeds *budget*; the message names the largest layers."""
    if budget is None or size <= budget:
        return []
    top = sorted(enumerate(layers, 1), key=lambda item: -item[1].size)[:TOP_LAYERS]
    parts = []
    for number, layer in top:
        share = f"{100 * layer.size / size:.0f}%" if size else "?"
        step = f": {_step(layer.created_by)}" if layer.created_by else ""
        parts.append(f"layer {number} {layer.digest[7:19]} {human_size(layer.size)} ({share}){step}")
    return [SIZE.finding(
        f"compressed size {human_size(size)} is over the budget of {human_size(budget)}; largest layers: "
        + "; ".join(parts), location=where)]


def label_differences(base: dict[str, str], other: dict[str, str]) -> list[str]:
    """Keys whose values differ between two label sets, described briefly."""
    out = []
    for key in sorted(set(base) | set(other)):
        if key not in other:
            out.append(f"{key} missing")
        elif key not in base:
            out.append(f"{key} only here")
        elif base[key] != other[key]:
            out.append(f"{key}={other[key]!r} (vs {base[key]!r})")
    return out


def labels_differ_finding(platform: str, first: str, diffs: list[str], where: Location) -> Finding:
    shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
    return LABELS_DIFFER.finding(f"labels of {platform} differ from those of {first}: {shown}", location=where)
