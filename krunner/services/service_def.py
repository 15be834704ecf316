"""Service definitions (``/etc/backend.ai/service-defs/<name>.json``) as pydantic models.

The models are the DSL's single source of truth: loading, validation (including
every template, checked against the variables it may use) and the published
JSON Schema (``service-defs/schema.json``, see :func:`json_schema`) all come
from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from . import template
from .launch import DEFAULT_LAUNCH_TIMEOUT

BUILTIN_VARIABLES = ("ports", "runtime_path")
SCHEMA_ID = "https://backend.ai/schemas/service-definition.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _octal_mode(value: str) -> str:
    try:
        mode = int(value, 8)
    except (TypeError, ValueError):
        raise ValueError(f"mode must be an octal string such as \"644\", got {value!r}") from None
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"mode {value!r} is out of range")
    return value


class WriteFileArgs(_Strict):
    filename: str = Field(description="File to write (templated).")
    body: list[str] = Field(description="Lines; each is written followed by a newline (templated).")
    mode: str = Field("644", description="Octal permission string.")
    append: bool = Field(False, description="Append instead of truncating.")

    _mode = field_validator("mode")(_octal_mode)


class WriteTempfileArgs(_Strict):
    body: list[str] = Field(description="Chunks written verbatim (include your own \\n) (templated).")
    mode: str = Field("644", description="Octal permission string.")
    suffix: str = Field(".py", description="File name suffix of the temporary file.")

    _mode = field_validator("mode")(_octal_mode)


class MkdirArgs(_Strict):
    path: str = Field(description="Directory to create with parents (templated).")


class RunCommandArgs(_Strict):
    command: list[str] = Field(min_length=1, description="argv, no shell (each element templated).")
    echo: bool = Field(False, description="Copy the command's output to the runner console.")
    timeout: float = Field(60.0, gt=0, le=3600, description="Seconds before the command is killed.")
    check: bool = Field(True, description="Fail the service start when the command exits non-zero.")


class LogArgs(_Strict):
    message: Optional[str] = Field(None, description="Text to log (templated).")
    body: Optional[str] = Field(None, description="Same as message (the name upstream's docs use).")
    debug: bool = False

    @model_validator(mode="after")
    def _one_text(self) -> "LogArgs":
        if (self.message is None) == (self.body is None):
            raise ValueError("give exactly one of 'message' or 'body'")
        return self

    @property
    def text(self) -> str:
        return self.message if self.message is not None else self.body or ""


class _Action(_Strict):
    ref: Optional[str] = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Store the result under this variable name.")


class WriteFileAction(_Action):
    action: Literal["write_file"]
    args: WriteFileArgs


class WriteTempfileAction(_Action):
    action: Literal["write_tempfile"]
    args: WriteTempfileArgs


class MkdirAction(_Action):
    action: Literal["mkdir"]
    args: MkdirArgs


class RunCommandAction(_Action):
    action: Literal["run_command"]
    args: RunCommandArgs


class LogAction(_Action):
    action: Literal["log"]
    args: LogArgs


PrestartAction = Annotated[
    Union[WriteFileAction, WriteTempfileAction, MkdirAction, RunCommandAction, LogAction],
    Field(discriminator="action"),
]

ArgumentValue = Union[None, str, list[str]]


class ServiceDefinition(_Strict):
    """One service port: how to start it and what clients may change."""

    command: Union[str, list[str], None] = Field(
        None, description="argv list (no shell), or a string run by `shell -c`. Required unless noop."
    )
    shell: Optional[str] = Field(
        "auto",
        description="Shell for string commands: 'auto' (bash if present, else sh), a path/name, or null to split the string like a shell would.",
    )
    noop: bool = Field(False, description="Nothing to spawn: the service is reported as started.")
    url_template: str = Field("", description="Filled in by clients with {protocol}, {host}, {port}.")
    prestart_actions: list[PrestartAction] = Field(
        default_factory=list,
        validation_alias=AliasChoices("prestart", "prestart_actions"),
        serialization_alias="prestart",
        description="Actions run before every start (alias: prestart_actions).",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment (keys and values templated).")
    allowed_envs: list[str] = Field(default_factory=list, description="Environment names a client may set.")
    allowed_arguments: list[str] = Field(default_factory=list, description="Argument names a client may set.")
    default_arguments: dict[str, ArgumentValue] = Field(
        default_factory=dict, description="Appended as `name [value…]`; null gives a bare flag."
    )
    launch_timeout: float = Field(
        DEFAULT_LAUNCH_TIMEOUT, gt=0, le=3600,
        description="Seconds to wait for the port to open (krunner only; keep it below the agent's 35 s wait "
        "for the start-service reply).",
    )

    @model_validator(mode="after")
    def _command_needed(self) -> "ServiceDefinition":
        if not self.noop and (self.command is None or self.command == "" or self.command == []):
            raise ValueError("'command' is required unless 'noop' is true")
        return self

    @model_validator(mode="after")
    def _templates_are_valid(self) -> "ServiceDefinition":
        known = set(BUILTIN_VARIABLES)
        for index, action in enumerate(self.prestart_actions):
            for where, text in _action_templates(action):
                _check(f"prestart[{index}].args.{where}", text, known)
            if action.ref:
                known.add(action.ref)
        for where, text in self.templates():
            _check(where, text, known)
        return self

    def templates(self) -> list[tuple[str, str]]:
        """Every templated string outside prestart actions, with where it is."""
        found: list[tuple[str, str]] = []
        if isinstance(self.command, str):
            found.append(("command", self.command))
        elif isinstance(self.command, list):
            found += [(f"command[{i}]", c) for i, c in enumerate(self.command)]
        for key, value in self.env.items():
            found += [(f"env key {key!r}", key), (f"env.{key}", value)]
        for name, value in self.default_arguments.items():
            if isinstance(value, str):
                found.append((f"default_arguments.{name}", value))
            elif isinstance(value, list):
                found += [(f"default_arguments.{name}[{i}]", v) for i, v in enumerate(value)]
        return found


def _check(where: str, text: str, known: set[str]) -> None:
    try:
        template.check(text, known)
    except template.TemplateError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _action_templates(action: Any) -> list[tuple[str, str]]:
    args = action.args
    if isinstance(args, WriteFileArgs):
        return [("filename", args.filename)] + [(f"body[{i}]", b) for i, b in enumerate(args.body)]
    if isinstance(args, WriteTempfileArgs):
        return [(f"body[{i}]", b) for i, b in enumerate(args.body)]
    if isinstance(args, MkdirArgs):
        return [("path", args.path)]
    if isinstance(args, RunCommandArgs):
        return [(f"command[{i}]", c) for i, c in enumerate(args.command)]
    if isinstance(args, LogArgs):
        return [("message", args.text)]
    return []


class DefinitionError(ValueError):
    """A service-definition file that cannot be used, with a reason naming the key."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, str) or not p.endswith("Action"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def load_definition(path: Path) -> ServiceDefinition:
    """Read and validate one file; raises DefinitionError naming the file, key and reason."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DefinitionError(path, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DefinitionError(path, f"line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise DefinitionError(path, "the file must contain a JSON object")
    try:
        return ServiceDefinition.model_validate(raw)
    except ValidationError as exc:
        raise DefinitionError(path, describe_validation_error(exc)) from None


def json_schema() -> dict[str, Any]:
    schema = ServiceDefinition.model_json_schema(by_alias=True, mode="validation")
    # both spellings of the prestart list are accepted (upstream's code reads either)
    schema["properties"]["prestart_actions"] = dict(schema["properties"]["prestart"], title="Prestart Actions")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
    schema["title"] = "Backend.AI service definition"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(json_schema_text(), end="")
