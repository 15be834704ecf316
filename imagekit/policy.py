"""The jail policy file (``/etc/backend.ai/jail/policy.yml``) as a typed model.

The model follows what the current (Rust) jail deserializes (spec §4.2): every
key is required, path ops are spelled ``OpOpen``…``OpChmod`` and lists are
never null. Files written for the older Go jail (``OP_OPEN`` names, bare
``allowed_syscalls:`` keys, no ``traced_syscalls``) are accepted by
:func:`load_policy`, which converts them and records each conversion as a
:class:`PolicyIssue` of kind ``"legacy"``. Every issue carries the 1-based line
it refers to, found from the YAML node marks.

``python -m imagekit.policy`` rewrites ``imagekit/schemas/jail-policy.schema.json``.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from pydantic_core import PydanticCustomError

from krunner.contract import JAIL_POLICY_PATH

POLICY_PATH = JAIL_POLICY_PATH
SCHEMA_PATH = Path(__file__).parent / "schemas" / "jail-policy.schema.json"

PATH_OPS = ("OpOpen", "OpAccess", "OpExec", "OpStat", "OpChmod")
LEGACY_OPS = {f"OP_{op[2:].upper()}": op for op in PATH_OPS}  # OP_OPEN -> OpOpen, …
LIST_KEYS = ("extra_envs", "preserved_env_keys", "allowed_syscalls", "traced_syscalls")
I32_MAX = 2**31 - 1

ENV_ASSIGNMENT = r"^[A-Za-z_][A-Za-z0-9_]*="


def glob_problem(pattern: str) -> str | None:
    """Why the jail's glob matcher would reject *pattern* (it panics on the first check), or None."""
    if "***" in pattern:
        return "'***' is not a valid wildcard (use '*' or '**')"
    for m in re.finditer(r"\*\*", pattern):
        before = pattern[m.start() - 1] if m.start() > 0 else "/"
        after = pattern[m.end()] if m.end() < len(pattern) else "/"
        if before != "/" or after != "/":
            return "'**' must be a whole path component (e.g. '/home/**/x')"
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            close = pattern.find("]", i + 2)  # ']' right after '[' (or '[!') is a literal member
            if pattern.startswith("[!", i):
                close = pattern.find("]", i + 3)
            if close < 0:
                return f"unclosed '[' at offset {i}"
            i = close
        i += 1
    return None


def _valid_glob(pattern: str) -> str:
    problem = glob_problem(pattern)
    if problem:
        raise PydanticCustomError(
            "glob_invalid", "invalid glob {pattern!r}: {problem}", {"pattern": pattern, "problem": problem}
        )
    return pattern


Glob = Annotated[StrictStr, AfterValidator(_valid_glob)]
Counter = Annotated[StrictInt, Field(ge=-1, le=I32_MAX)]
EnvAssignment = Annotated[StrictStr, Field(pattern=ENV_ASSIGNMENT)]


class WhitelistPaths(BaseModel):
    """Glob patterns allowed per path operation. ``*`` also matches ``/``. All five ops are required."""

    model_config = ConfigDict(extra="forbid", strict=True)

    OpOpen: list[Glob] = Field(description="open(2) paths (openat is not checked by the jail)")
    OpAccess: list[Glob] = Field(description="access(2) paths")
    OpExec: list[Glob] = Field(description="execve/execveat: the executable (for shells, the script)")
    OpStat: list[Glob] = Field(description="parsed but never enforced by the jail")
    OpChmod: list[Glob] = Field(description="chmod/fchmodat paths")


class JailPolicy(BaseModel):
    """``/etc/backend.ai/jail/policy.yml`` as the current jail reads it (every key required)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Backend.AI jail policy")

    whitelist_paths: WhitelistPaths
    exec_allowance: Counter = Field(description="execs allowed outside the OpExec whitelist; -1 unlimited, 0 none")
    fork_allowance: Counter = Field(description="fork/clone calls allowed from sandboxed programs; -1 unlimited")
    max_child_procs: Counter = Field(description="cap on live traced children; -1 unlimited")
    extra_envs: list[EnvAssignment] = Field(description='"KEY=VALUE" items added to the environment')
    preserved_env_keys: list[StrictStr] = Field(description="the only parent environment variables kept")
    diff_to_default: StrictBool = Field(
        description="union extra_envs, preserved_env_keys and allowed_syscalls with the built-in defaults"
    )
    allowed_syscalls: list[StrictStr] = Field(description="syscalls the seccomp filter allows outright")
    traced_syscalls: list[StrictStr] = Field(description="required by the parser but ignored (built-in list used)")


# --- loading with line numbers ---------------------------------------------------------------


@dataclass(frozen=True)
class PolicyIssue:
    """One problem found while loading: *kind* is syntax, unknown-key, unknown-op, missing, type,
    counter, env, glob, value or legacy (a conversion applied)."""

    kind: str
    message: str
    line: int | None
    path: tuple[Any, ...] = ()
    suggestion: str | None = None


class PolicyError(ValueError):
    """The text is not a valid policy; ``issues`` (non-legacy) each carry a line."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        first = issues[0]
        where = f"line {first.line}: " if first.line else ""
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(f"{where}{first.message}{more}")

    @property
    def line(self) -> int | None:
        return self.issues[0].line


@dataclass
class LoadedPolicy:
    policy: JailPolicy | None
    issues: list[PolicyIssue]  # problems, including legacy conversions
    data: Any = None  # the YAML data after legacy conversion (for further checks)
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)

    @property
    def errors(self) -> list[PolicyIssue]:
        return [i for i in self.issues if i.kind != "legacy"]

    @property
    def legacy(self) -> list[PolicyIssue]:
        return [i for i in self.issues if i.kind == "legacy"]

    def line_for(self, path: tuple[Any, ...]) -> int | None:
        """Line of *path* or of its closest ancestor present in the file."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


_YAML11_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n"}


def _walk(node: yaml.Node, path: tuple[Any, ...], lines: dict, issues: list[PolicyIssue]) -> None:
    """Record the line of every key and item; flag duplicate keys and YAML 1.1-only booleans."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key in seen:
                message = f"duplicate key {key!r} (first at line {seen[key]})"
                issues.append(PolicyIssue("syntax", message, line, path + (key,)))
            seen.setdefault(key, line)
            lines.setdefault(path + (key,), line)
            _walk(value_node, path + (key,), lines, issues)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.setdefault(path + (i,), item.start_mark.line + 1)
            _walk(item, path + (i,), lines, issues)
    elif isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool" and node.style is None:
        if node.value.lower() in _YAML11_BOOL_WORDS:
            issues.append(
                PolicyIssue(
                    "type",
                    f"{node.value!r} is a boolean only in YAML 1.1; the jail's YAML 1.2 parser reads a string",
                    node.start_mark.line + 1,
                    path,
                    "true" if node.value.lower() in ("yes", "on", "y") else "false",
                )
            )


def _syntax_issue(exc: yaml.YAMLError, text: str) -> PolicyIssue:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
    else:
        line = None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return PolicyIssue("syntax", f"not valid YAML: {problem}", line)


def _suggest(name: str, candidates: list[str]) -> str | None:
    cleaned = re.sub(r"[^A-Za-z0-9_]", "", name)
    for probe in (name, cleaned, cleaned.lower()):
        match = difflib.get_close_matches(probe, candidates, n=1, cutoff=0.6)
        if match:
            return match[0]
    return None


def _convert_legacy(data: dict, lines: dict, issues: list[PolicyIssue]) -> None:
    """Rewrite the Go-era layout in place (OP_* ops, null lists, no traced_syscalls)."""
    wl = data.get("whitelist_paths")
    if isinstance(wl, dict):
        renamed = [k for k in wl if k in LEGACY_OPS and LEGACY_OPS[k] not in wl]
        for old in renamed:
            new = LEGACY_OPS[old]
            wl[new] = wl.pop(old)
            for p, ln in list(lines.items()):
                if p[:2] == ("whitelist_paths", old):
                    lines.setdefault(("whitelist_paths", new) + p[2:], ln)
        if renamed:
            names = ", ".join(f"{o} → {LEGACY_OPS[o]}" for o in renamed)
            issues.append(
                PolicyIssue(
                    "legacy",
                    f"Go-era path-op names ({names}); the current jail expects Op* names",
                    lines.get(("whitelist_paths",)),
                    ("whitelist_paths",),
                )
            )
        for op in PATH_OPS:
            if op in wl and wl[op] is None:
                wl[op] = []
                issues.append(
                    PolicyIssue("legacy", f"whitelist_paths.{op} is null; write [] (the current jail needs a list)",
                                lines.get(("whitelist_paths", op)), ("whitelist_paths", op))
                )
    for key in LIST_KEYS:
        if key in data and data[key] is None:
            data[key] = []
            issues.append(
                PolicyIssue("legacy", f"'{key}:' is null; write '{key}: []' (the current jail needs a list)",
                            lines.get((key,)), (key,))
            )
    if "traced_syscalls" not in data:
        data["traced_syscalls"] = []
        issues.append(
            PolicyIssue("legacy", "no traced_syscalls key; the current jail requires it (its content is ignored)", 1,
                        ("traced_syscalls",))
        )


_TYPE_NAMES = {"int": "an integer", "bool": "true or false", "list": "a list", "string": "a string",
               "dict": "a mapping", "model": "a mapping"}


def _issue_from_error(err: dict, loaded: LoadedPolicy) -> PolicyIssue:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    line = loaded.line_for(loc)
    if kind == "missing":
        return PolicyIssue("missing", f"required key '{where}' is missing", line, loc)
    if kind == "extra_forbidden":
        name = str(loc[-1])
        if loc[:1] == ("whitelist_paths",) and len(loc) == 2:
            sugg = _suggest(name, list(PATH_OPS) + list(LEGACY_OPS))
            sugg = LEGACY_OPS.get(sugg, sugg) if sugg else None
            return PolicyIssue("unknown-op", f"unknown path op '{name}' in whitelist_paths", line, loc, sugg)
        sugg = _suggest(name, list(JailPolicy.model_fields))
        return PolicyIssue("unknown-key", f"unknown key '{where}'", line, loc, sugg)
    if kind in ("greater_than_equal", "less_than_equal"):
        return PolicyIssue("counter", f"{where} is {err['input']!r}: must be -1 (unlimited) or 0..{I32_MAX}", line, loc)
    if kind == "string_pattern_mismatch" and loc[:1] == ("extra_envs",):
        return PolicyIssue("env", f"extra_envs item {err['input']!r} is not KEY=VALUE", line, loc)
    if kind == "glob_invalid":
        return PolicyIssue("glob", f"{where}: {err['msg']}", line, loc)
    expected = next((v for k, v in _TYPE_NAMES.items() if kind.startswith(k)), None)
    if expected:
        got = type(err["input"]).__name__ if err["input"] is not None else "null"
        return PolicyIssue("type", f"{where} must be {expected}, got {got} {err['input']!r}"[:200], line, loc)
    return PolicyIssue("value", f"{where}: {err['msg']}", line, loc)


def load_policy(text: str) -> LoadedPolicy:
    """Parse and validate *text*, converting the legacy layout; never raises for bad input."""
    loaded = LoadedPolicy(policy=None, issues=[])
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        loaded.issues.append(_syntax_issue(exc, text))
        return loaded
    if node is None:
        loaded.issues.append(PolicyIssue("syntax", "the policy file is empty", 1))
        return loaded
    loaded.lines[()] = 1
    _walk(node, (), loaded.lines, loaded.issues)
    if not isinstance(data, dict):
        loaded.issues.append(
            PolicyIssue("syntax", f"the policy must be a mapping of keys, not {type(data).__name__}",
                        node.start_mark.line + 1)  # fmt: skip
        )
        return loaded
    _convert_legacy(data, loaded.lines, loaded.issues)
    loaded.data = data
    try:
        loaded.policy = JailPolicy.model_validate(data)
    except ValidationError as exc:
        loaded.issues.extend(_issue_from_error(e, loaded) for e in exc.errors())
    if any(i.kind != "legacy" for i in loaded.issues):
        loaded.policy = None  # e.g. a YAML 1.1 boolean the model accepted
    return loaded


def parse_policy(text: str) -> JailPolicy:
    """The policy in *text* (legacy layout converted); raises :class:`PolicyError` with line numbers."""
    loaded = load_policy(text)
    if loaded.policy is None:
        raise PolicyError(loaded.errors)
    return loaded.policy


# --- default, dump, schema ---------------------------------------------------------------------

DEFAULT_PRESERVED_ENV_KEYS = (
    "HOME", "PATH", "LANG", "LC_ALL", "USER", "SHELL", "TERM", "LD_LIBRARY_PATH", "LD_PRELOAD",
    "PYTHONPATH", "PYTHONUNBUFFERED", "PYENV_ROOT",
)  # fmt: skip


def default_policy() -> JailPolicy:
    """What most kernel images want: the jail's defaults plus unlimited execs and the usual env keys."""
    return JailPolicy(
        whitelist_paths=WhitelistPaths(
            OpOpen=["*"], OpAccess=["*"], OpExec=["*"], OpStat=["*"], OpChmod=["/home/work/*", "/tmp/*"]
        ),
        exec_allowance=-1,
        fork_allowance=-1,
        max_child_procs=512,
        extra_envs=[],
        preserved_env_keys=list(DEFAULT_PRESERVED_ENV_KEYS),
        diff_to_default=True,
        allowed_syscalls=[],
        traced_syscalls=[],
    )


_COMMENTS = {
    "whitelist_paths": "Glob patterns allowed per path operation ('*' also matches '/'). All five ops are required.\n"
    "OpStat is parsed but not enforced; openat(2) is never checked against OpOpen.",
    "exec_allowance": "Execs allowed whose path is outside OpExec: -1 unlimited, 0 none.",
    "fork_allowance": "fork/vfork/clone calls allowed from programs in the sandbox: -1 unlimited, 0 none.",
    "max_child_procs": "Cap on live processes under the jail: -1 unlimited. 0 denies every fork.",
    "extra_envs": 'Variables added to the environment, each "KEY=VALUE".',
    "preserved_env_keys": "The only variables kept from the parent environment (plus extra_envs).",
    "diff_to_default": "true: extra_envs, preserved_env_keys and allowed_syscalls are added to the built-in\n"
    "defaults; false: they replace them (allowed_syscalls must then list everything a program needs).",
    "allowed_syscalls": "Extra syscalls the seccomp filter allows. Do not add ptrace.",
    "traced_syscalls": "Required by the jail's parser but ignored: the built-in list is always used.",
}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def _seq(values: list[Any], indent: str) -> list[str]:
    return [f"{indent}- {_scalar(v)}" for v in values]


def dump_policy(policy: JailPolicy) -> str:
    """*policy* as commented YAML in the current layout (what ``policy init`` writes)."""
    out = [
        f"# Backend.AI jail policy ({POLICY_PATH}).",
        "# Read only when the agent runs with sandbox-type 'jail' and passes --policy; see docs/jail-policy.md.",
        "",
    ]
    data = policy.model_dump()
    for key in JailPolicy.model_fields:
        out.extend(f"# {c}" for c in _COMMENTS[key].splitlines())
        value = data[key]
        if key == "whitelist_paths":
            out.append(f"{key}:")
            for op in PATH_OPS:
                globs = value[op]
                out.append(f"  {op}: []" if not globs else f"  {op}:")
                out.extend(_seq(globs, "    "))
        elif isinstance(value, list):
            out.append(f"{key}: []" if not value else f"{key}:")
            out.extend(_seq(value, "  "))
        else:
            out.append(f"{key}: {_scalar(value)}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def json_schema() -> dict[str, Any]:
    """JSON Schema of the current layout (committed as ``imagekit/schemas/jail-policy.schema.json``)."""
    schema = JailPolicy.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://backend.ai/schemas/jail-policy.schema.json",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_schema())
