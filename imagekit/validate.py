"""Run every rule over one :class:`~imagekit.kernel_inputs.KernelInputs` and return the findings.

The single entry point for validation, used by ``validate``, ``build`` and ``test``.
"""

from __future__ import annotations

from .findings import Finding, sorted_findings
from .kernel_inputs import KernelInputs


def check(inputs: KernelInputs) -> list[Finding]:
    """All findings for *inputs*, suppressions applied, sorted by location."""
    from .rules import run_all

    return sorted_findings(run_all(inputs))
