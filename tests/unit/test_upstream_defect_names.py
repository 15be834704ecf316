"""Every ``RE-nn`` (an upstream runner defect) cited in the code or the docs is defined in the table
of docs/protocol.md ("Differences from upstream")."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bRE-(\d+)\b")


def _defined() -> set[int]:
    text = (REPO / "docs" / "protocol.md").read_text()
    table = text[text.index("## Differences from upstream") :]
    names: set[int] = set()
    for row in table.splitlines():
        if row.startswith("| RE-"):
            first_cell = row.split("|")[1]
            names.update(int(n) for n in NAME.findall(first_cell.split(":")[0]))
    return names


def _cited() -> dict[int, list[str]]:
    files = subprocess.run(
        ["git", "ls-files", "*.py", "*.md"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    cited: dict[int, list[str]] = {}
    for name in files:
        path = REPO / name
        if not path.is_file():
            continue
        for number in NAME.findall(path.read_text(errors="replace")):
            cited.setdefault(int(number), []).append(name)
    return cited


def test_every_cited_upstream_defect_is_defined_in_the_protocol_doc():
    defined = _defined()
    assert {26, 34, 46} <= defined
    undefined = {f"RE-{n}": sorted(set(where)) for n, where in _cited().items() if n not in defined}
    assert undefined == {}
