"""Inline suppressions cover their own file's lines only, or the whole target when file-wide."""

from imagekit.findings import Finding, Location, Severity
from imagekit.kernel_inputs import KernelInputs


def _finding(file: str, line: int) -> Finding:
    return Finding(rule="BAI012", severity=Severity.ERROR, message="m", location=Location(file=file, line=line))


def test_line_suppression_does_not_reach_other_files():
    inputs = KernelInputs(target="k", labels={}, suppressions={"BAI012": [5]}, suppression_file="Dockerfile")
    assert inputs.is_suppressed(_finding("Dockerfile", 5))
    assert not inputs.is_suppressed(_finding("kernel.toml", 5))
    assert not inputs.is_suppressed(_finding("Dockerfile", 6))
    assert not inputs.is_suppressed(_finding("Dockerfile", 5).model_copy(update={"rule": "BAI013"}))


def test_file_wide_suppression_covers_the_target():
    inputs = KernelInputs(target="k", labels={}, suppressions={"BAI012": [None]}, suppression_file="Dockerfile")
    assert inputs.is_suppressed(_finding("service-defs/x.json", 3))
