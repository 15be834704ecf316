"""BAI500–BAI509: problems in the Dockerfile itself, found while reading it (:mod:`imagekit.dockerfile`).

These are *front-end* findings: they come from reading a target, not from the
:class:`~imagekit.kernel_inputs.KernelInputs` the other rules check, so this module has no
``check(inputs)``. Target loaders (:mod:`imagekit.targets`) call :func:`findings_for` and hand
the result to the caller next to the inputs.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..dockerfile import Dockerfile, Problem
from ..findings import Finding, Location, Severity
from .catalogue import RULES, Rule, rule

_S = "dockerfile"

NO_FROM = rule(
    "BAI500",
    Severity.ERROR,
    "Dockerfile has no FROM",
    "Start the Dockerfile with FROM <base image>.",
    description="Without a FROM there is no build stage, so no label or file of the Dockerfile can be checked.",
    subject=_S,
)
LABEL_SYNTAX = rule(
    "BAI501",
    Severity.ERROR,
    "LABEL instruction cannot be parsed",
    'Write LABEL key=value pairs, quoting values with spaces: LABEL ai.backend.features="batch uid-match".',
    description=(
        "A LABEL that mixes the key=value form with bare words, has a blank key or an unterminated "
        "quote fails the build (or sets other labels than intended)."
    ),
    subject=_S,
)
UNRESOLVED = rule(
    "BAI502",
    Severity.INFO,
    "variable has no known value",
    "Give the ARG a default, or set the value literally; it was checked as written.",
    description=(
        "The value of an ARG without a default comes from --build-arg at build time, and a name "
        "declared nowhere (or only in the base image) cannot be known from the Dockerfile. The text "
        "is kept literally instead of guessing, so label checks see e.g. '${VERSION}'. Validate the "
        "built image for the real values."
    ),
    subject=_S,
)
NO_REASON = rule(
    "BAI503",
    Severity.WARNING,
    "suppression without a reason",
    "Add a reason after the rule IDs: # bai-imagekit ignore=BAI012 the runner ships its own def.",
    description="A suppression still applies without a reason, but a reviewer cannot tell why it is there.",
    subject=_S,
)
UNKNOWN_RULE = rule(
    "BAI504",
    Severity.WARNING,
    "suppression names an unknown rule",
    "Use rule IDs as printed by bai-imagekit validate (BAI plus three digits).",
    description="A misspelt ID suppresses nothing, so the finding it was meant for still shows.",
    subject=_S,
)
BAD_SUPPRESSION = rule(
    "BAI505",
    Severity.WARNING,
    "suppression comment has no effect",
    "Write '# bai-imagekit ignore=BAI012 reason' on the line(s) just above the instruction it is for.",
    description="The comment is malformed, or no instruction follows it.",
    subject=_S,
)
HEREDOC = rule(
    "BAI506",
    Severity.WARNING,
    "heredoc is never closed",
    "End the heredoc with a line that holds only its delimiter (e.g. EOF).",
    description="An unterminated heredoc fails the build; the reader went on as if there were none.",
    subject=_S,
)
COPY_MISSING = rule(
    "BAI507",
    Severity.WARNING,
    "COPY source missing from the build context",
    "Fix the source path (relative to the directory holding the Dockerfile), or add the file.",
    description=(
        "A COPY/ADD that puts service definitions or the jail policy into the image names a source "
        "that does not exist, so the build fails or the file is not where the runner looks."
    ),
    subject=_S,
)
UNKNOWABLE = rule(
    "BAI508",
    Severity.INFO,
    "image files cannot be read from the Dockerfile",
    "Validate the built image to check these files.",
    description=(
        "Service definitions or the jail policy come from another stage or image, a URL or a RUN "
        "command, so their content is unknown; the checks that need them are skipped."
    ),
    subject=_S,
)
ENV_SYNTAX = rule(
    "BAI509",
    Severity.WARNING,
    "ENV instruction cannot be parsed",
    "Write ENV key=value pairs, quoting values with spaces.",
    description="Variables from a malformed ENV are not known, so labels that use them stay unresolved.",
    subject=_S,
)

_BY_KIND: dict[str, Rule] = {
    "no-from": NO_FROM,
    "label-syntax": LABEL_SYNTAX,
    "env-syntax": ENV_SYNTAX,
    "unresolved-variable": UNRESOLVED,
    "suppression-no-reason": NO_REASON,
    "suppression-malformed": BAD_SUPPRESSION,
    "suppression-dangling": BAD_SUPPRESSION,
    "heredoc-unterminated": HEREDOC,
    "copy-source-missing": COPY_MISSING,
    "unknowable": UNKNOWABLE,
}

#: findings about suppressions themselves; never suppressed
UNSUPPRESSIBLE = frozenset({NO_REASON.id, UNKNOWN_RULE.id, BAD_SUPPRESSION.id})


def findings_for(doc: Dockerfile, extra: Iterable[Problem] = ()) -> list[Finding]:
    """The reader's problems with *doc* (plus *extra*, e.g. from :func:`~imagekit.dockerfile.files_placed_in`)."""
    from . import load_all

    load_all()  # so that every rule ID is known when checking suppressions
    out: list[Finding] = []
    for problem in [*doc.problems, *extra]:
        r = _BY_KIND.get(problem.kind)
        if r is None:
            continue
        out.append(r.finding(problem.message, location=Location(file=doc.path, line=problem.line)))
    for sup in doc.suppressions:
        for rule_id in sup.rules:
            if rule_id not in RULES:
                out.append(
                    UNKNOWN_RULE.finding(
                        f"suppression names {rule_id}, which is not a bai-imagekit rule",
                        location=Location(file=doc.path, line=sup.line),
                    )
                )
    return out


EXAMPLES: dict[str, str] = {
    "BAI501": "`LABEL ai.backend.kernelspec=1 python` → `LABEL ai.backend.kernelspec=1 ai.backend.runtime-type=python`",
    "BAI502": "`LABEL ai.backend.runtime-path=$PY` with `ARG PY` (no default) → `ARG PY=/usr/bin/python3`",
    "BAI503": "`# bai-imagekit ignore=BAI204` → `# bai-imagekit ignore=BAI204 kept for older clients`",
    "BAI504": "`# bai-imagekit ignore=BAI12 …` → `ignore=BAI012 …`",
    "BAI507": "`COPY service-def/ /etc/backend.ai/service-defs/` → `COPY service-defs/ …`",
}
