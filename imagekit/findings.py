"""One finding type for every check imagekit runs (validate, build, test).

A :class:`Finding` is data: the rule it breaks, where, and what to do about it.
Printers (:mod:`imagekit.report`) turn a list of findings into text, JSON,
SARIF or GitHub annotations; nothing prints while checking.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]

    def at_least(self, threshold: "Severity") -> bool:
        return self.rank >= threshold.rank


def display_path(path: "Path | str") -> str:
    """*path* as the user would write it: relative to the working directory when inside it."""
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


class Location(BaseModel):
    """Where a finding points: a file (relative to the target when possible) and a 1-based line."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        out = self.file
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str  # stable ID, e.g. "BAI001"
    severity: Severity
    message: str  # one line
    hint: str = ""  # how to fix it
    location: Location | None = None
    label: str | None = None  # the label key involved, if any

    def sort_key(self) -> tuple:
        loc = self.location
        return (loc.file if loc else "", (loc.line or 0) if loc else 0, -self.severity.rank, self.rule)


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=Finding.sort_key)


def exceeds(findings: Iterable[Finding], threshold: Severity) -> bool:
    """True if any finding is at or above *threshold* (the validate exit-code rule)."""
    return any(f.severity.at_least(threshold) for f in findings)
