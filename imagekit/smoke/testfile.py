"""The image author's own checks: ``image-test.toml`` next to the Dockerfile (or ``--test-file``).

Example::

    [[commands]]
    name = "numpy is importable"
    run = ["python3", "-c", "import numpy; print(numpy.__version__)"]
    stdout = '^2\\.'

    [[commands]]
    name = "pip is not broken"
    run = "python3 -m pip --version"      # a string runs with /bin/sh -c
    user = "root"

    [[files]]
    path = "/usr/bin/python3"
    executable = true

The JSON Schema is committed as ``imagekit/schemas/image-test.schema.json``
(``python -m imagekit.smoke.testfile`` prints it).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import UsageError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "image-test.schema.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


class CommandTest(_Strict):
    name: str = Field(description="Shown in the report.")
    run: list[str] | str = Field(description="argv (no shell), or a string run with /bin/sh -c.")
    user: Literal["work", "root"] = Field("work", description="The kernel user (uid-match) or root.")
    exit_code: int = Field(0, alias="exit-code", description="Expected exit code.")
    stdout: str | None = Field(None, description="Regular expression that must be found in stdout.")
    stderr: str | None = Field(None, description="Regular expression that must be found in stderr.")
    timeout: float = Field(60, gt=0, le=3600, description="Seconds before the command is killed (a failure).")

    _re_out = field_validator("stdout")(_regex)
    _re_err = field_validator("stderr")(_regex)

    @field_validator("run")
    @classmethod
    def _not_empty(cls, value: list[str] | str) -> list[str] | str:
        if not value:
            raise ValueError("run must not be empty")
        return value

    def argv(self) -> list[str]:
        return ["/bin/sh", "-c", self.run] if isinstance(self.run, str) else list(self.run)


class FileTest(_Strict):
    path: str = Field(description="Absolute path in the image.")
    exists: bool = Field(True, description="false: the path must NOT exist.")
    executable: bool | None = Field(None, description="true: must be executable by the kernel user.")
    contains: str | None = Field(None, description="Regular expression that must be found in the file.")

    _re = field_validator("contains")(_regex)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path must be absolute, got {value!r}")
        return value


class ImageTestFile(_Strict):
    commands: list[CommandTest] = Field(default_factory=list)
    files: list[FileTest] = Field(default_factory=list)


def load_test_file(path: Path) -> ImageTestFile:
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the test file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return ImageTestFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise UsageError(f"{path}: {problems}") from exc


def json_schema_text() -> str:
    schema = ImageTestFile.model_json_schema(by_alias=True)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "bai-imagekit image test file", **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(json_schema_text())
