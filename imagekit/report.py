"""Printers over one list of findings: ``text``, ``json``, ``sarif`` (2.1.0) and ``github`` annotations.

Each printer is a pure function ``(Report, stream) -> str``: the stream is only asked whether it
is a terminal (colour); the caller writes the returned text. Findings are printed in
:func:`~imagekit.findings.sorted_findings` order.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote

from . import __version__
from .console import paint
from .findings import Finding, Severity, sorted_findings

TOOL_NAME = "bai-imagekit"
#: where the rules are explained; SARIF needs an absolute URI here
INFORMATION_URI = "https://docs.backend.ai/"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
GITHUB_CAP = 10  # annotations GitHub shows per severity and step

_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_GITHUB_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


@dataclass
class Report:
    """What was validated and what was found (each finding tagged with its target)."""

    targets: list[str]
    findings: list[tuple[str, Finding]] = field(default_factory=list)

    @classmethod
    def single(cls, target: str, findings: list[Finding]) -> "Report":
        return cls([target], [(target, f) for f in sorted_findings(findings)])

    def add(self, target: str, findings: list[Finding]) -> None:
        self.targets.append(target)
        self.findings.extend((target, f) for f in sorted_findings(findings))

    @property
    def plain(self) -> list[Finding]:
        return [f for _, f in self.findings]

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Severity}
        for f in self.plain:
            out[f.severity.value] += 1
        return out


def summary(counts: dict[str, int]) -> str:
    e, w, i = counts["error"], counts["warning"], counts["info"]
    return f"{e} error{'s' * (e != 1)}, {w} warning{'s' * (w != 1)}, {i} info"


# ------------------------------------------------------------------------------------ text


def render_text(report: Report, stream: TextIO = sys.stdout) -> str:
    lines: list[str] = []
    grouped = len(report.targets) > 1
    for target in report.targets:
        mine = [f for t, f in report.findings if t == target]
        if grouped:
            lines.append(paint(f"==> {target} <==", "bold", stream) + ("" if mine else " no findings"))
        for f in mine:
            where = f"{f.location}: " if f.location else ""
            sev = paint(f.severity.value, _COLOUR[f.severity], stream)
            message = f.message.replace("\n", "\n    ")
            lines.append(f"{where}{sev} {paint(f.rule, 'bold', stream)}: {message}")
            if f.hint:
                lines.append(f"    hint: {f.hint}")
    lines.append(summary(report.counts()))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ json


def _finding_json(target: str, f: Finding) -> dict[str, Any]:
    data = f.model_dump(mode="json")
    data["target"] = target
    return data


def render_json(report: Report, stream: TextIO = sys.stdout) -> str:
    doc = {
        "tool": {"name": TOOL_NAME, "version": __version__},
        "targets": list(report.targets),
        "findings": [_finding_json(t, f) for t, f in report.findings],
        "counts": report.counts(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------ sarif


def _sarif_rule(f: Finding) -> dict[str, Any]:
    from .rules.catalogue import RULES

    r = RULES.get(f.rule)
    title = r.title if r else f.message
    hint = r.hint if r else f.hint
    out: dict[str, Any] = {
        "id": f.rule,
        "shortDescription": {"text": title},
        "help": {"text": hint or title},
        "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity if r else f.severity]},
    }
    if r and r.description:
        out["fullDescription"] = {"text": r.description}
    if r and r.subject:
        out["properties"] = {"tags": [r.subject]}
    return out


def _sarif_result(target: str, f: Finding, index: int) -> dict[str, Any]:
    text = f.message + (f"\nhint: {f.hint}" if f.hint else "")
    result: dict[str, Any] = {"ruleId": f.rule, "ruleIndex": index, "level": _SARIF_LEVEL[f.severity], "message": {"text": text}}
    loc = f.location
    physical: dict[str, Any] = {"artifactLocation": {"uri": quote(loc.file if loc else target, safe="/")}}
    if loc is not None and loc.line is not None and loc.line >= 1:
        region: dict[str, Any] = {"startLine": loc.line}
        if loc.column is not None and loc.column >= 1:
            region["startColumn"] = loc.column
        physical["region"] = region
    result["locations"] = [{"physicalLocation": physical}]
    props: dict[str, Any] = {"target": target}
    if f.label:
        props["label"] = f.label
    result["properties"] = props
    return result


def render_sarif(report: Report, stream: TextIO = sys.stdout) -> str:
    from .rules import load_all

    load_all()
    order: dict[str, int] = {}
    rules: list[dict[str, Any]] = []
    for f in report.plain:
        if f.rule not in order:
            order[f.rule] = len(rules)
            rules.append(_sarif_rule(f))
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "results": [_sarif_result(t, f, order[f.rule]) for t, f in report.findings],
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------ github


def escape_data(text: str) -> str:
    """Escape a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (``file=``, ``title=`` …)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github_line(target: str, f: Finding) -> str:
    props = []
    file = f.location.file if f.location else target
    props.append(f"file={escape_property(file)}")
    if f.location is not None and f.location.line is not None:
        props.append(f"line={f.location.line}")
        if f.location.column is not None:
            props.append(f"col={f.location.column}")
    props.append(f"title={escape_property(f.rule)}")
    message = f.message + (f"\nhint: {f.hint}" if f.hint else "")
    return f"::{_GITHUB_COMMAND[f.severity]} {','.join(props)}::{escape_data(message)}"


def render_github(report: Report, stream: TextIO = sys.stdout) -> str:
    shown = {s: 0 for s in Severity}
    hidden = {s: 0 for s in Severity}
    lines = []
    for target, f in report.findings:
        if shown[f.severity] < GITHUB_CAP:
            shown[f.severity] += 1
            lines.append(_github_line(target, f))
        else:
            hidden[f.severity] += 1
    if any(hidden.values()):
        parts = [f"{n} {s.value}" for s, n in hidden.items() if n]
        lines.append(
            f"{TOOL_NAME}: {sum(hidden.values())} more finding(s) not annotated "
            f"(GitHub shows {GITHUB_CAP} per severity): {', '.join(parts)}; use --format text to list all"
        )
    lines.append(summary(report.counts()))
    return "\n".join(lines) + "\n"


FORMATS: dict[str, Callable[[Report, TextIO], str]] = {
    "text": render_text,
    "json": render_json,
    "sarif": render_sarif,
    "github": render_github,
}


def render(report: Report, fmt: str, stream: TextIO = sys.stdout) -> str:
    return FORMATS[fmt](report, stream)
