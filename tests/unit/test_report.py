"""Report printers: golden outputs for every format, SARIF 2.1.0 shape, GitHub caps and escaping.

Regenerate the golden files with ``UPDATE_GOLDEN=1 pytest tests/unit/test_report.py``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from imagekit import __version__
from imagekit.findings import Finding, Location, Severity
from imagekit.report import GITHUB_CAP, Report, escape_data, escape_property, render, render_github, render_text
from imagekit.rules.dockerfile_rules import BAD_SUPPRESSION, LABEL_SYNTAX, NO_REASON, UNRESOLVED

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def sample() -> Report:
    report = Report([])
    report.add(
        "kernels/python/Dockerfile",
        [
            UNRESOLVED.finding("label x: $PY has no known value here", location=Location(file="kernels/python/Dockerfile", line=7)),
            LABEL_SYNTAX.finding("LABEL: cannot find '=' in 'y'", location=Location(file="kernels/python/Dockerfile", line=3)),
            NO_REASON.finding("suppression has no reason", location=Location(file="kernels/python/Dockerfile", line=2)),
        ],
    )
    report.add(
        "labels.json",
        [
            Finding(
                rule="BAI999",
                severity=Severity.WARNING,
                message="100% odd: a,b\nsecond line",
                hint="not a catalogue rule",
                location=Location(file="dir,with:odd/labels.json", line=4, column=9),
                label="ai.backend.x",
            ),
            BAD_SUPPRESSION.finding("no location at all"),
        ],
    )
    return report


def normalise(text: str) -> str:
    return text.replace(__version__, "<version>")


@pytest.mark.parametrize("fmt, name", [("text", "report.txt"), ("json", "report.json"), ("sarif", "report.sarif"), ("github", "report.github.txt")])
def test_golden(fmt, name, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    got = normalise(render(sample(), fmt, io.StringIO()))
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8")


def test_text_shape():
    text = render_text(sample(), io.StringIO())
    assert "kernels/python/Dockerfile:3: error BAI501: LABEL: cannot find '=' in 'y'\n    hint: " in text
    assert text.endswith("1 error, 3 warnings, 1 info\n")
    assert "\033[" not in text


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert "\033[31merror\033[0m" in render_text(sample(), _TTY())
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in render_text(sample(), _TTY())


def test_json_has_every_field_and_counts():
    doc = json.loads(render(sample(), "json"))
    assert doc["targets"] == ["kernels/python/Dockerfile", "labels.json"]
    assert doc["counts"] == {"error": 1, "warning": 3, "info": 1}
    first = doc["findings"][0]
    assert set(first) >= {"rule", "severity", "message", "hint", "location", "label", "target"}
    assert first["location"] == {"file": "kernels/python/Dockerfile", "line": 2, "column": None}


def test_sarif_follows_the_2_1_0_shape():
    doc = json.loads(render(sample(), "sarif"))
    assert doc["version"] == "2.1.0" and "sarif-schema-2.1.0" in doc["$schema"]
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "bai-imagekit" and driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for r in driver["rules"]:
        assert r["shortDescription"]["text"] and r["help"]["text"]
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert len(run["results"]) == 5
    for res in run["results"]:
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note") and res["message"]["text"]
        (loc,) = res["locations"]
        phys = loc["physicalLocation"]
        assert phys["artifactLocation"]["uri"]
        if "region" in phys:
            assert phys["region"]["startLine"] >= 1
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels == {"BAI501": "error", "BAI502": "note", "BAI503": "warning", "BAI999": "warning", "BAI505": "warning"}
    odd = next(r for r in run["results"] if r["ruleId"] == "BAI999")
    assert odd["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "dir%2Cwith%3Aodd/labels.json"


def test_github_escaping():
    assert escape_data("a%b\r\nc") == "a%25b%0D%0Ac"
    assert escape_property("x:y,z%\n") == "x%3Ay%2Cz%25%0A"
    out = render(sample(), "github")
    assert "::warning file=dir%2Cwith%3Aodd/labels.json,line=4,col=9,title=BAI999::100%25 odd: a,b%0Asecond line%0Ahint: " in out
    assert "::error file=kernels/python/Dockerfile,line=3,title=BAI501::" in out
    assert "::notice file=kernels/python/Dockerfile,line=7,title=BAI502::" in out


def test_github_caps_each_severity_and_summarises_the_rest():
    findings = [
        LABEL_SYNTAX.finding(f"e{i}", location=Location(file="Dockerfile", line=i + 1)) for i in range(13)
    ] + [NO_REASON.finding(f"w{i}", location=Location(file="Dockerfile", line=i + 1)) for i in range(11)] + [
        UNRESOLVED.finding("n", location=Location(file="Dockerfile", line=1))
    ]
    lines = render_github(Report.single("Dockerfile", findings)).splitlines()
    assert sum(line.startswith("::error ") for line in lines) == GITHUB_CAP
    assert sum(line.startswith("::warning ") for line in lines) == GITHUB_CAP
    assert sum(line.startswith("::notice ") for line in lines) == 1
    extra = [line for line in lines if not line.startswith("::")]
    assert extra[0] == (
        "bai-imagekit: 4 more finding(s) not annotated (GitHub shows 10 per severity): "
        "3 error, 1 warning; use --format text to list all"
    )
    assert extra[1] == "13 errors, 11 warnings, 1 info"
