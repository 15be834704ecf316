"""Printing the rescan view: a block per image for ``validate``, and ``registry scan``'s table,
JSON and JUnit. Pure functions returning text; colour only on a TTY (``NO_COLOR`` honoured)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO
from xml.etree import ElementTree as ET

from .. import __version__
from ..console import paint
from ..findings import Finding, Severity
from ..rules.registry_image import human_size
from .rescan import ImageView, PlatformView, Verdict

_VERDICT_COLOUR = {Verdict.KERNEL: "green", Verdict.PLAIN: "yellow", Verdict.SKIPPED: "red", Verdict.FAILS: "red"}
VERDICT_TEXT = {
    Verdict.KERNEL: "registered as a kernel image",
    Verdict.PLAIN: "registered as a plain image",
    Verdict.SKIPPED: "skipped",
    Verdict.FAILS: "the rescan fails",
}


def _accels(p: PlatformView) -> str:
    if not p.registered:
        return "-"
    return p.accelerators or "(none)"


def platform_line(p: PlatformView, stream: TextIO = sys.stdout) -> str:
    verdict = paint(VERDICT_TEXT[p.verdict], _VERDICT_COLOUR[p.verdict], stream)
    line = f"  {p.platform} ({p.architecture}): {verdict}"
    if p.registered:
        line += f"; accelerators {_accels(p)}; size {human_size(p.size)} in {len(p.layers)} layers"
    if p.reason and p.verdict is not Verdict.PLAIN:
        line += f"\n      why: {p.reason}"
    return line


def render_view_text(image: ImageView, stream: TextIO = sys.stdout) -> str:
    head = paint(f"rescan of {image.reference}", "bold", stream)
    kind = f" ({image.media_type}, {image.digest})" if image.media_type else ""
    lines = [f"{head}{kind}"]
    if image.error:
        lines.append(f"  {paint('the rescan fails', 'red', stream)}: {image.error}")
    lines += [platform_line(p, stream) for p in image.platforms]
    return "\n".join(lines) + "\n"


def view_json(image: ImageView) -> dict[str, Any]:
    data = image.model_dump(mode="json", exclude={"platforms": {"__all__": {"fails_whole_tag"}}})
    data["verdict"] = image.summary()
    return data


# ------------------------------------------------------------------------------------ registry scan


def _counts(findings: list[Finding]) -> str:
    e = sum(f.severity is Severity.ERROR for f in findings)
    w = sum(f.severity is Severity.WARNING for f in findings)
    i = sum(f.severity is Severity.INFO for f in findings)
    return f"{e}E {w}W {i}I"


def _size(image: ImageView) -> str:
    sizes = [p.size for p in image.platforms if p.config_digest is not None]
    if not sizes:
        return "-"
    return human_size(max(sizes)) if len(set(sizes)) == 1 else " / ".join(human_size(s) for s in sizes)


def _accels_col(image: ImageView) -> str:
    values = [_accels(p) for p in image.platforms if p.registered]
    return ",".join(dict.fromkeys(values)) or "-"


def _platforms_col(image: ImageView) -> str:
    return ",".join(dict.fromkeys(p.architecture for p in image.platforms if p.config_digest is not None)) or "-"


def render_scan_table(rows: list[tuple[ImageView, list[Finding]]], stream: TextIO = sys.stdout) -> str:
    """One row per image, then each image's skip reasons and findings under its reference."""
    header = ("IMAGE", "VERDICT", "PLATFORMS", "ACCELERATORS", "SIZE", "FINDINGS")
    table = [header] + [(v.reference, v.summary(), _platforms_col(v), _accels_col(v), _size(v), _counts(f))
                        for v, f in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    lines[0] = paint(lines[0], "bold", stream)
    details: list[str] = []
    for view, findings in rows:
        notes = [f"  {p.platform}: {VERDICT_TEXT[p.verdict]}: {p.reason}" for p in view.platforms
                 if p.reason and p.verdict in (Verdict.SKIPPED, Verdict.FAILS)]
        if view.error:
            notes.insert(0, f"  {view.error}")
        found = [f"{view.reference}: {paint(f.severity.value, {'error': 'red', 'warning': 'yellow', 'info': 'blue'}[f.severity.value], stream)} "
                 f"{f.rule}: {f.message}" for f in findings]
        if notes or found:
            details.append("")
            details.append(paint(f"==> {view.reference} <==", "bold", stream))
            details += notes + found
    total = {s: sum(f.severity is s for _, fs in rows for f in fs) for s in Severity}
    summary = (f"{len(rows)} image{'s' * (len(rows) != 1)}: "
               f"{sum(v.summary() == 'kernel' for v, _ in rows)} kernel, "
               f"{sum(v.summary() == 'plain' for v, _ in rows)} plain, "
               f"{sum(v.summary() not in ('kernel', 'plain') for v, _ in rows)} skipped, failing or mixed; "
               f"{total[Severity.ERROR]} errors, {total[Severity.WARNING]} warnings, {total[Severity.INFO]} info")
    return "\n".join(lines + details + ["", summary]) + "\n"


def render_scan_json(registry: str, rows: list[tuple[ImageView, list[Finding]]], stream: TextIO = sys.stdout) -> str:
    doc = {
        "tool": {"name": "bai-imagekit", "version": __version__},
        "registry": registry,
        "images": [{**view_json(v), "findings": [f.model_dump(mode="json") for f in fs]} for v, fs in rows],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def render_scan_junit(registry: str, rows: list[tuple[ImageView, list[Finding]]], fail_on: Severity,
                      stream: TextIO = sys.stdout) -> str:
    """A test case per image: it fails when the image has findings at or above *fail_on* (every platform the
    rescan skips or fails on has one); a listed tag without a manifest is a skipped case."""
    suite = ET.Element("testsuite", name=f"bai-imagekit registry scan {registry}", tests=str(len(rows)))
    failures = 0
    for view, findings in rows:
        case = ET.SubElement(suite, "testcase", classname=f"{view.registry}/{view.repository}",
                             name=view.tag or view.reference)
        bad = [f for f in findings if f.severity.at_least(fail_on)]
        lost = [p for p in view.platforms if p.verdict in (Verdict.SKIPPED, Verdict.FAILS) and
                not p.reason.startswith("an attestation manifest")]
        if view.missing:
            ET.SubElement(case, "skipped", message=view.error or "missing")
        elif bad:
            failures += 1
            text = "\n".join([view.error or ""] + [f"{p.platform}: {VERDICT_TEXT[p.verdict]}: {p.reason}" for p in lost]
                             + [f"{f.severity.value} {f.rule}: {f.message}" for f in bad]).strip()
            ET.SubElement(case, "failure", message=bad[0].message[:200]).text = text
        out = ET.SubElement(case, "system-out")
        out.text = render_view_text(view, _NoTTY())
    suite.set("failures", str(failures))
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode", xml_declaration=True) + "\n"


class _NoTTY:
    def isatty(self) -> bool:
        return False
