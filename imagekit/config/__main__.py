"""``python -m imagekit.config schema``: print the configuration file's JSON schema
(what ``imagekit/schemas/bai-imagekit.schema.json`` holds; a unit test keeps the two equal)."""

from __future__ import annotations

import json
import sys

from .model import json_schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["schema"]:
        sys.exit("usage: python -m imagekit.config schema")
    sys.stdout.write(schema_text())
