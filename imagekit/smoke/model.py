"""Results of a smoke run: one :class:`CheckResult` per check, one :class:`ImageReport` per image."""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field


class Outcome(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"  # the harness itself could not run the check


class CheckResult(BaseModel):
    id: str  # stable, e.g. "query.output"
    title: str
    outcome: Outcome
    seconds: float = 0.0
    message: str = ""  # one line: what was seen (failure reason, skip reason, or a fact)
    details: str = ""  # longer text for failures (logs, outputs)


class ImageReport(BaseModel):
    image: str
    results: list[CheckResult] = Field(default_factory=list)
    seconds: float = 0.0
    harness_error: str | None = None  # set when the image could not be tested at all (exit 2)
    urls: dict[str, str] = Field(default_factory=dict)  # service name -> rendered URL

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome in (Outcome.FAILED, Outcome.ERROR)]

    @property
    def passed(self) -> bool:
        return self.harness_error is None and not self.failed

    def counts(self) -> dict[str, int]:
        out = {o.value: 0 for o in Outcome}
        for r in self.results:
            out[r.outcome.value] += 1
        return out


class CheckFailed(Exception):
    """Raised by a check: the image does not do what it should. The message is the one-line reason."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class CheckSkipped(Exception):
    """Raised by a check that does not apply to this image (the message says why)."""
