"""docs/rules.md is generated from the rule table and must stay in sync with it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagekit.rules import catalogue, docs

REPO = Path(__file__).resolve().parents[2]
RULES = catalogue.all_rules()


def test_rules_md_is_in_sync_with_the_rule_table():
    assert docs.DOCS_FILE == Path("docs") / "rules.md"  # the command runs in the repository's root
    assert (REPO / docs.DOCS_FILE).read_text(encoding="utf-8") == docs.render(), "run: python -m imagekit.rules.docs"


@pytest.mark.parametrize("r", RULES, ids=[r.id for r in RULES])
def test_every_rule_is_documented_and_has_a_hint(r):
    assert r.hint.strip(), f"{r.id} has no fix hint"
    assert r.title.strip() and "\n" not in r.title
    assert r.subject, f"{r.id} has no subject"
    assert f"### {r.id}: {r.title}" in docs.render()


def test_examples_name_existing_rules():
    assert set(docs.examples()) <= {r.id for r in RULES}


def test_rules_are_grouped_by_subject_in_id_order():
    text = docs.render()
    ids = re.findall(r"^### (BAI\d{3}):", text, flags=re.M)
    assert ids == sorted(ids) == [r.id for r in RULES]
    for subject in {r.subject for r in RULES}:
        assert f"## {docs._subject_title(subject)}\n" in text


def test_check_mode(tmp_path):
    target = tmp_path / "rules.md"
    assert docs.main(["--check", "--output", str(target)]) == 1  # missing
    assert docs.main(["--output", str(target)]) == 0
    assert docs.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text() + "edited\n")
    assert docs.main(["--check", "--output", str(target)]) == 1


def test_module_entry_point_checks_the_repository_file():
    out = subprocess.run(
        [sys.executable, "-m", "imagekit.rules.docs", "--check"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
