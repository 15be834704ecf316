"""The rule table: every rule is data — a stable ID, a severity, a title and a fix hint.

Check modules declare their rules with :func:`rule` at import time and create
findings with :meth:`Rule.finding`; ``docs/rules.md`` is generated from this
table (``python -m imagekit.rules.docs``), so the docs cannot drift from the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..findings import Finding, Location, Severity
from ..runner_target import RunnerTarget

_ID = re.compile(r"^BAI\d{3}$")


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str  # short name, e.g. "runtime-path is missing"
    hint: str  # how to fix, one or two sentences
    description: str = ""  # longer text for docs/rules.md (why it matters)
    subject: str = ""  # "labels", "service-ports", … (docs grouping)
    #: the finding depends on the runner target: an error for ``stock``, a warning for ``krunner``
    runner_dependent: bool = False
    #: the Backend.AI versions whose behaviour the rule matches (docs/rules.md)
    matches: str = ""

    def finding(
        self,
        message: str,
        *,
        location: Location | None = None,
        label: str | None = None,
        hint: str | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        return Finding(
            rule=self.id,
            severity=severity or self.severity,
            message=message,
            hint=self.hint if hint is None else hint,
            location=location,
            label=label,
        )


    def for_runner(self, runner: RunnerTarget, message: str, **kwargs: object) -> Finding:
        """A finding of a runner-dependent rule: an error for the stock runner, a warning for krunner,
        the message saying which runner it concerns."""
        if runner is RunnerTarget.STOCK:
            return self.finding(f"{message} [stock runner]", severity=Severity.ERROR, **kwargs)  # type: ignore[arg-type]
        return self.finding(f"{message} [krunner accepts this; a stock runner does not]",
                            severity=Severity.WARNING, **kwargs)  # type: ignore[arg-type]


RULES: dict[str, Rule] = {}


def rule(
    id: str, severity: Severity | str, title: str, hint: str, *, description: str = "", subject: str = "",
    runner_dependent: bool = False, matches: str = "",
) -> Rule:
    """Declare a rule (once per ID); returns it for use by its check module.

    A *runner_dependent* rule is declared with severity ``error`` (what it is for the default,
    stock runner) and reports through :meth:`Rule.for_runner`.
    """
    if not _ID.match(id):
        raise ValueError(f"rule id {id!r} must look like BAI123")
    if id in RULES:
        raise ValueError(f"rule {id} declared twice")
    r = Rule(id, Severity(severity), title, hint, description, subject, runner_dependent, matches)
    RULES[id] = r
    return r


def all_rules() -> list[Rule]:
    """Every rule, after importing every check module (so the table is complete)."""
    from . import load_all

    load_all()

    return [RULES[k] for k in sorted(RULES)]
