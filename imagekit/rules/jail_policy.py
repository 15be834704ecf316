"""BAI4xx: the jail policy file (spec §4), checked against what the current jail reads.

Structural problems come from :func:`imagekit.policy.load_policy`; the hazards
below (values that parse but make every program fail) are checked on the
loaded data, so they are reported even when another key is broken.
"""

from __future__ import annotations

from typing import Any

from ..findings import Finding, Location
from ..kernel_inputs import KernelInputs
from ..policy import PATH_OPS, POLICY_PATH, LoadedPolicy, PolicyIssue, load_policy
from .catalogue import rule

_S = "jail-policy"

YAML = rule(
    "BAI401", "error", "jail policy is not valid YAML",
    "Fix the YAML syntax (the jail panics on a parse error and the session's main process dies).",
    description="The file must be one YAML mapping without duplicate keys; the Rust jail panics on anything else.",
    subject=_S,
)  # fmt: skip
UNKNOWN_OP = rule(
    "BAI402", "error", "unknown path op in whitelist_paths",
    "Use only OpOpen, OpAccess, OpExec, OpStat and OpChmod.",
    description="An unknown op name is a deserialization error in the current jail, which then panics.",
    subject=_S,
)  # fmt: skip
UNKNOWN_KEY = rule(
    "BAI403", "warning", "unknown key in jail policy",
    "Remove the key or fix its spelling; the jail ignores keys it does not know.",
    description="A misspelt key is silently ignored, so the intended setting is missing (e.g. a stray character "
    "before 'whitelist_paths').",
    subject=_S,
)  # fmt: skip
MISSING = rule(
    "BAI404", "error", "required jail policy key is missing",
    "Add the key (`bai-imagekit policy init` prints a complete policy).",
    description="The current jail requires every key; the Go jail used zero values instead (no whitelist denies "
    "every checked path, max_child_procs 0 denies every fork).",
    subject=_S,
)  # fmt: skip
WRONG_TYPE = rule(
    "BAI405", "error", "jail policy value has the wrong type",
    "Write integers for the counters, true/false for diff_to_default and lists of strings elsewhere.",
    description="The jail's YAML 1.2 parser rejects a value of the wrong type and panics.",
    subject=_S,
)  # fmt: skip
LEGACY = rule(
    "BAI406", "warning", "jail policy uses the Go-era layout",
    "Rename OP_* ops to Op*, write [] instead of bare list keys and add 'traced_syscalls: []'.",
    description="Files written for the Go jail fail to deserialize in the current Rust jail (spec §4.5).",
    subject=_S,
)  # fmt: skip
COUNTER = rule(
    "BAI407", "error", "jail counter out of range",
    "Use -1 for unlimited or a non-negative 32-bit integer.",
    description="exec_allowance, fork_allowance and max_child_procs are 32-bit integers where -1 means unlimited.",
    subject=_S,
)  # fmt: skip
NO_PROCESSES = rule(
    "BAI408", "error", "jail policy forbids forking or executing",
    "Set fork_allowance and max_child_procs to -1 (or a generous number) and allow execs.",
    description="With no forks or no execs allowed, shells, the runner's services and user code all fail.",
    subject=_S,
)  # fmt: skip
ENV = rule(
    "BAI409", "error", "extra_envs item is not KEY=VALUE",
    "Write each item as NAME=VALUE with NAME matching [A-Za-z_][A-Za-z0-9_]*.",
    description="An item without '=' makes the jail panic (index out of range).",
    subject=_S,
)  # fmt: skip
GLOB = rule(
    "BAI410", "error", "invalid glob in whitelist_paths",
    "Use '*' (matches '/' too), '?', '[...]' and '**' only as a whole path component.",
    description="The Rust jail compiles each pattern on the first path check and panics on an invalid one.",
    subject=_S,
)  # fmt: skip
DEAD_WHITELIST = rule(
    "BAI411", "warning", "whitelist entry can never allow anything",
    "Give the op at least one absolute pattern such as '*' or '/home/work/*'.",
    description="An empty list denies every checked path for that op; a relative pattern never matches an "
    "absolute path.",
    subject=_S,
)  # fmt: skip
PTRACE = rule(
    "BAI412", "warning", "ptrace is allowed in the jail policy",
    "Remove ptrace from allowed_syscalls; a traced program must not trace others.",
    description="Allowing ptrace lets sandboxed programs escape the tracer's checks.",
    subject=_S,
)  # fmt: skip
TRACED = rule(
    "BAI413", "info", "traced_syscalls content is ignored",
    "Write 'traced_syscalls: []'; the jail always uses its built-in list.",
    subject=_S,
)  # fmt: skip
BARE_SECCOMP = rule(
    "BAI414", "error", "allowed_syscalls too small without diff_to_default",
    "Set diff_to_default: true to extend the built-in syscall list instead of replacing it.",
    description="With diff_to_default false, allowed_syscalls replaces the defaults and everything else gets EPERM.",
    subject=_S,
)  # fmt: skip
BARE_ENV = rule(
    "BAI415", "warning", "preserved_env_keys drops PATH or HOME",
    "Add PATH and HOME to preserved_env_keys, or set diff_to_default: true.",
    description="Only preserved keys survive into the sandbox; without PATH programs are not found by name.",
    subject=_S,
)  # fmt: skip

_BY_KIND = {
    "syntax": YAML, "unknown-op": UNKNOWN_OP, "unknown-key": UNKNOWN_KEY, "missing": MISSING, "type": WRONG_TYPE,
    "value": WRONG_TYPE, "legacy": LEGACY, "counter": COUNTER, "env": ENV, "glob": GLOB,
}  # fmt: skip

#: a process cannot even exec and exit without these
ESSENTIAL_SYSCALLS = ("execve", "exit_group", "read", "write", "mmap", "brk", "close")

_MISSING_EFFECT = {
    "whitelist_paths": "every checked open/access/exec/chmod is denied",
    "OpOpen": "the jail panics on the first open(2)",
    "OpAccess": "the jail panics on the first access(2)",
    "OpExec": "the jail panics on the first exec",
    "OpStat": "the jail panics when it looks the op up",
    "OpChmod": "the jail panics on the first chmod(2)",
    "max_child_procs": "the Go jail denies every fork",
}


def _location(inputs: KernelInputs, line: int | None) -> Location:
    base = inputs.policy_location or Location(file=POLICY_PATH)
    return Location(file=base.file, line=line if line is not None else base.line)


def _issue_finding(inputs: KernelInputs, issue: PolicyIssue) -> Finding:
    r = _BY_KIND.get(issue.kind, WRONG_TYPE)
    message = issue.message
    if issue.kind == "missing" and issue.path and str(issue.path[-1]) in _MISSING_EFFECT:
        message += f" ({_MISSING_EFFECT[str(issue.path[-1])]})"
    hint = None
    if issue.suggestion is not None:
        hint = f"Did you mean '{issue.suggestion}'? {r.hint}"
    return r.finding(message, location=_location(inputs, issue.line), hint=hint)


def _int(data: dict, key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _hazards(inputs: KernelInputs, loaded: LoadedPolicy) -> list[Finding]:
    data = loaded.data
    out: list[Finding] = []

    def at(*path: Any) -> Location:
        return _location(inputs, loaded.line_for(path))

    for key, what in (("fork_allowance", "no program in the sandbox can fork"),
                      ("max_child_procs", "no process can be started")):  # fmt: skip
        if _int(data, key) == 0:
            out.append(NO_PROCESSES.finding(f"{key} is 0: {what}", location=at(key)))
    wl = data.get("whitelist_paths")
    wl = wl if isinstance(wl, dict) else {}
    exec_allowance = _int(data, "exec_allowance")
    for op in PATH_OPS:
        globs = wl.get(op)
        if isinstance(globs, list) and not globs:
            if op != "OpExec":
                out.append(DEAD_WHITELIST.finding(f"whitelist_paths.{op} is empty: every checked path is denied",
                                                  location=at("whitelist_paths", op)))  # fmt: skip
            elif exec_allowance == 0:
                out.append(NO_PROCESSES.finding("exec_allowance is 0 and OpExec is empty: every exec is denied",
                                                location=at("whitelist_paths", op)))  # fmt: skip
            elif exec_allowance is not None and exec_allowance > 0:
                out.append(DEAD_WHITELIST.finding(
                    f"OpExec is empty: only {exec_allowance} exec(s) are allowed, then every exec is denied",
                    location=at("whitelist_paths", op)))  # fmt: skip
        for i, pattern in enumerate(_strings(globs)):
            if pattern and not pattern.startswith(("/", "*", "?", "[")):
                out.append(DEAD_WHITELIST.finding(
                    f"whitelist_paths.{op} pattern {pattern!r} is relative and never matches an absolute path",
                    location=at("whitelist_paths", op, i)))  # fmt: skip
    raw_allowed = data.get("allowed_syscalls")
    allowed = _strings(raw_allowed)
    for i, name in enumerate(raw_allowed if isinstance(raw_allowed, list) else []):
        if name == "ptrace":
            out.append(PTRACE.finding("allowed_syscalls includes ptrace", location=at("allowed_syscalls", i)))
    traced = data.get("traced_syscalls")
    if isinstance(traced, list) and traced:
        out.append(TRACED.finding(f"traced_syscalls lists {len(traced)} name(s) that the jail ignores",
                                  location=at("traced_syscalls")))
    if data.get("diff_to_default") is False:
        if isinstance(raw_allowed, list):
            missing = [s for s in ESSENTIAL_SYSCALLS if s not in allowed]
            if missing:
                out.append(BARE_SECCOMP.finding(
                    f"diff_to_default is false and allowed_syscalls lacks {', '.join(missing)}: "
                    "programs get EPERM and die", location=at("allowed_syscalls")))  # fmt: skip
        keys = data.get("preserved_env_keys")
        if isinstance(keys, list):
            dropped = [k for k in ("PATH", "HOME") if k not in keys]
            if dropped:
                out.append(BARE_ENV.finding(
                    f"diff_to_default is false and preserved_env_keys lacks {', '.join(dropped)}",
                    location=at("preserved_env_keys")))  # fmt: skip
    return out


def check_text(inputs: KernelInputs) -> list[Finding]:
    """Findings for ``inputs.policy_text`` (used by ``check`` and ``bai-imagekit policy check``)."""
    if inputs.policy_text is None:
        return []
    loaded = load_policy(inputs.policy_text)
    findings = [_issue_finding(inputs, issue) for issue in loaded.issues]
    if isinstance(loaded.data, dict):
        findings.extend(_hazards(inputs, loaded))
    return findings


def check(inputs: KernelInputs) -> list[Finding]:
    return check_text(inputs)
