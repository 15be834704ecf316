"""Smoke-run reports: ``text`` (for people), ``json`` (for scripts), ``junit`` (for CI dashboards)."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from typing import TextIO

from ..console import paint
from .model import CheckResult, ImageReport, Outcome

_MARK = {Outcome.PASSED: ("PASS", "green"), Outcome.FAILED: ("FAIL", "red"), Outcome.SKIPPED: ("SKIP", "yellow"),
         Outcome.ERROR: ("ERR ", "red")}


def progress_line(image: str, result: CheckResult, stream: TextIO = sys.stderr) -> str:
    word, colour = _MARK[result.outcome]
    return f"{paint(word, colour, stream)} {image}  {result.title} ({result.seconds:.2f} s) — {result.message}"


def render_text(reports: list[ImageReport], stream: TextIO = sys.stdout) -> str:
    out: list[str] = []
    for rep in reports:
        verdict = "passed" if rep.passed else "FAILED"
        out.append(paint(f"== {rep.image}: {verdict} in {rep.seconds:.1f} s", "bold", stream))
        if rep.harness_error:
            out.append(f"  error: {rep.harness_error}")
        for r in rep.results:
            word, colour = _MARK[r.outcome]
            out.append(f"  {paint(word, colour, stream)} {r.title:<34} {r.seconds:7.2f} s  {r.message}")
            if r.outcome is Outcome.FAILED and r.details:
                out.extend("       | " + line for line in r.details.strip().splitlines()[-15:])
        if rep.urls:
            out.append("  services:")
            out.extend(f"    {name:<16} {url}" for name, url in sorted(rep.urls.items()))
        counts = rep.counts()
        out.append(f"  {counts['passed']} passed, {counts['failed'] + counts['error']} failed, {counts['skipped']} skipped")
    return "\n".join(out) + "\n"


def render_json(reports: list[ImageReport]) -> str:
    body = {
        "passed": all(r.passed for r in reports),
        "images": [{**r.model_dump(mode="json"), "passed": r.passed, "counts": r.counts()} for r in reports],
    }
    return json.dumps(body, indent=2) + "\n"


def render_junit(reports: list[ImageReport]) -> str:
    suites = ET.Element("testsuites", name="bai-imagekit test")
    for rep in reports:
        counts = rep.counts()
        suite = ET.SubElement(
            suites, "testsuite", name=rep.image, tests=str(len(rep.results) + (1 if rep.harness_error else 0)),
            failures=str(counts["failed"]), errors=str(counts["error"] + (1 if rep.harness_error else 0)),
            skipped=str(counts["skipped"]), time=f"{rep.seconds:.3f}",
        )
        if rep.harness_error:
            case = ET.SubElement(suite, "testcase", classname=rep.image, name="harness", time="0")
            ET.SubElement(case, "error", message=rep.harness_error)
        for r in rep.results:
            case = ET.SubElement(suite, "testcase", classname=rep.image, name=r.id, time=f"{r.seconds:.3f}")
            if r.outcome is Outcome.FAILED:
                ET.SubElement(case, "failure", message=r.message).text = r.details or r.message
            elif r.outcome is Outcome.ERROR:
                ET.SubElement(case, "error", message=r.message).text = r.details or r.message
            elif r.outcome is Outcome.SKIPPED:
                ET.SubElement(case, "skipped", message=r.message)
            else:
                ET.SubElement(case, "system-out").text = r.message
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


RENDERERS = {"text": render_text, "json": render_json, "junit": render_junit}
