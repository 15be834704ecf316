"""The project's rule configuration applied to findings: the one place severity overrides and
disabled rules take effect (every target's ``findings()`` goes through :func:`apply_active`, so
``validate``, ``build``'s checks and ``test``'s label check all see the same result).

The configuration is the command's (set once by the CLI for the run, :func:`use_rules`); it is
process-wide rather than a context variable because ``test -j N`` checks images in threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..findings import Finding, Severity, sorted_findings


@dataclass(frozen=True)
class RuleConfig:
    severity: dict[str, Severity] = field(default_factory=dict)
    disabled: dict[str, str] = field(default_factory=dict)  # rule id -> reason

    def apply(self, findings: Iterable[Finding]) -> list[Finding]:
        out = []
        for f in findings:
            if f.rule in self.disabled:
                continue
            wanted = self.severity.get(f.rule)
            out.append(f if wanted is None or wanted is f.severity else f.model_copy(update={"severity": wanted}))
        return out

    def __bool__(self) -> bool:
        return bool(self.severity or self.disabled)


_active = RuleConfig()


def active_rules() -> RuleConfig:
    return _active


def apply_active(findings: Iterable[Finding]) -> list[Finding]:
    """*findings* with the active rule configuration applied, sorted."""
    return sorted_findings(_active.apply(findings))


@contextmanager
def use_rules(config: RuleConfig) -> Iterator[None]:
    global _active
    previous, _active = _active, config
    try:
        yield
    finally:
        _active = previous
