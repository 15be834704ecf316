"""The project configuration file's model: ``.bai-imagekit.toml`` or ``[tool.bai-imagekit]`` in ``pyproject.toml``.

Strict: an unknown key is an error. The JSON schema editors use (``imagekit/schemas/bai-imagekit.schema.json``,
``bai-imagekit config schema``) is generated from this model.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..findings import Severity
from ..runner_target import RunnerTarget

_RULE_ID = re.compile(r"^BAI\d{3}$")
_BUILD_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RulesConfig(BaseModel):
    """``[rules]``: how the project wants individual rules reported."""

    model_config = ConfigDict(extra="forbid")

    severity: dict[str, Severity] = Field(
        default_factory=dict,
        description="Rule id -> the severity its findings are reported with (error, warning, info).",
        json_schema_extra={"propertyNames": {"pattern": _RULE_ID.pattern}},
    )
    disabled: dict[str, str] = Field(
        default_factory=dict,
        description="Rule id -> why the project does not want it checked (a non-empty reason is required).",
        json_schema_extra={"propertyNames": {"pattern": _RULE_ID.pattern},
                           "additionalProperties": {"type": "string", "minLength": 1, "pattern": r"\S"}},
    )

    @field_validator("severity", "disabled")
    @classmethod
    def _ids(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not _RULE_ID.match(key):
                raise ValueError(f"{key!r} is not a rule id (BAI followed by three digits, e.g. BAI012)")
        return value

    @field_validator("disabled")
    @classmethod
    def _reasons(cls, value: dict[str, str]) -> dict[str, str]:
        for key, reason in value.items():
            if not reason.strip():
                raise ValueError(f"{key}: a disabled rule needs a reason, e.g. {key} = \"why this is fine here\"")
        return value


class ConfigFile(BaseModel):
    """Every key of the configuration file. Command-line flags win over it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False,
                              json_schema_extra={"title": "bai-imagekit configuration"})

    schema_ref: str | None = Field(None, alias="$schema", description="The JSON schema of this file (for editors).")
    fail_on: Severity | None = Field(
        None, alias="fail-on", description="validate: the lowest severity that makes the exit code 1 (default: error).")
    runner: RunnerTarget | None = Field(
        None, description="The kernel runner images are validated and tested for: stock or krunner "
        "(default: validate/build the image's own, else stock; test krunner).")
    max_size: str | None = Field(
        None, alias="max-size", description="validate: compressed-size budget of registry images, e.g. 2GiB (BAI315).")
    ca_bundle: str | None = Field(
        None, alias="ca-bundle", description="build: CA bundle for RUN steps behind a TLS-intercepting proxy: a file "
        "(relative to this file), auto ($SSL_CERT_FILE or $REQUESTS_CA_BUNDLE) or none.")
    build_args: dict[str, str] = Field(
        default_factory=dict, alias="build-args",
        description="build: default build arguments (--build-arg KEY=VALUE overrides one).",
        json_schema_extra={"propertyNames": {"pattern": _BUILD_ARG.pattern}})
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Severity overrides and disabled rules.")

    @field_validator("max_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            from ..errors import UsageError
            from ..rules.registry_image import parse_size

            try:
                parse_size(value)
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("build_args")
    @classmethod
    def _arg_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _BUILD_ARG.match(key):
                raise ValueError(f"{key!r} is not a build argument name")
        return value


SCHEMA_ID = "https://backend.ai/schemas/imagekit/bai-imagekit.schema.json"


def _no_nulls(node: Any) -> Any:
    """TOML has no null: ``X | None`` fields are just ``X`` to an editor (unset = absent)."""
    if isinstance(node, list):
        return [_no_nulls(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _no_nulls(v) for k, v in node.items() if not (k == "default" and v is None)}
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del out["anyOf"]
        out = {**rest[0], **out} if len(rest) == 1 else {**out, "anyOf": rest}
    return out


def json_schema() -> dict[str, Any]:
    """The schema of the file, as editors (Taplo / Even Better TOML, JSON-schema aware tools) read it."""
    schema = _no_nulls(ConfigFile.model_json_schema(by_alias=True, mode="validation"))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
