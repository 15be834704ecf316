"""The service-definition DSL: models, templating rules, prestart actions, broken files, schema."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import jsonschema
import pytest

from krunner.services import template
from krunner.services.actions import ActionContext, ActionFailed, run_prestart
from krunner.services.service_def import (
    DefinitionError,
    ServiceDefinition,
    json_schema_text,
    load_definition,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "service-defs" / "schema.json"

# ----------------------------------------------------------------------------- templating

VARS = {"ports": [8080, 8081], "runtime_path": "/usr/bin/python3", "cfg": {"out": "o", "a-b": 1}}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{ports[0]}", "8080"),
        ("${{ ports[1] }}", "8081"),
        ("--port={ports[0]}", "--port=8080"),
        ("${HOME}", "${HOME}"),
        ("${A:-${B}}/x", "${A:-${B}}/x"),
        ("$HOME/{runtime_path}", "$HOME//usr/bin/python3"),
        ("$x{ports[0]}", "$x8080"),
        ("{{literal}}", "{literal}"),
        ('{{"a": {ports[0]}}}', '{"a": 8080}'),
        ("{cfg[out]}", "o"),
        ("{cfg['out']}", "o"),
        ('{cfg["a-b"]}', "1"),
        ("plain", "plain"),
    ],
)
def test_render(text, expected):
    assert template.render(text, VARS) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{ports.count}", "attribute access"),
        ("{ports[0]!r}", "conversions"),
        ("{ports[0]:>5}", "format specs"),
        ("{len(ports)}", "calls"),
        ("{ports[0]", "unclosed"),
        ("a } b", "single '}'"),
        ("{}", "must start with a variable"),
        ("${{ ports[0] ", "unclosed"),
    ],
)
def test_rejected_templates(text, reason):
    with pytest.raises(template.TemplateError, match=reason):
        template.parse(text)


def test_unknown_variable_is_rejected_with_the_known_ones():
    with pytest.raises(template.TemplateError, match=r"unknown variable 'prots' \(available: ports, runtime_path\)"):
        template.check("{prots[0]}", ["ports", "runtime_path"])


def test_index_errors_at_render_time():
    with pytest.raises(template.TemplateError, match="no item 5"):
        template.render("{ports[5]}", VARS)


# ----------------------------------------------------------------------------- models


def test_minimal_and_full_definitions():
    assert ServiceDefinition.model_validate({"command": ["x"]}).launch_timeout == 30
    full = ServiceDefinition.model_validate(
        {
            "command": "{runtime_path} -m app --port {ports[0]} --cfg {cfg}",
            "shell": "sh",
            "url_template": "http://{host}:{port}/",
            "prestart_actions": [
                {"action": "write_tempfile", "args": {"body": ["x = {ports[0]}\n"]}, "ref": "cfg"},
                {"action": "write_file", "args": {"filename": "/tmp/f", "body": ["a"], "mode": "600", "append": True}},
                {"action": "mkdir", "args": {"path": "/tmp/d"}},
                {"action": "run_command", "args": {"command": ["true"], "echo": True, "timeout": 5}},
                {"action": "log", "args": {"message": "hi {cfg}"}},
                {"action": "log", "args": {"body": "also fine", "debug": True}},
            ],
            "env": {"APP_PORT": "{ports[0]}"},
            "allowed_envs": ["PASSWORD"],
            "allowed_arguments": ["--logdir"],
            "default_arguments": {"--logdir": "/home/work/logs", "--flag": None, "--multi": ["a", "{ports[1]}"]},
            "launch_timeout": 5,
        }
    )
    assert len(full.prestart_actions) == 6
    assert ServiceDefinition.model_validate({"prestart": [], "command": ["x"]}).prestart_actions == []


@pytest.mark.parametrize(
    "body, reason",
    [
        ({}, "'command' is required"),
        ({"command": ["x"], "comand": 1}, "comand: unknown key"),
        ({"command": ["{nope}"]}, "command[0]: {nope}: unknown variable 'nope'"),
        ({"command": ["{later}"], "prestart": []}, "unknown variable 'later'"),
        ({"command": ["x"], "prestart": [{"action": "rm_rf", "args": {}}]}, "rm_rf"),
        ({"command": ["x"], "prestart": [{"action": "write_file", "args": {"filename": "f", "body": [], "mode": "9z"}}]}, "octal"),
        ({"command": ["x"], "prestart": [{"action": "log", "args": {}}]}, "exactly one of 'message' or 'body'"),
        ({"command": ["x"], "prestart": [{"action": "mkdir", "args": {"path": "{r}"}, "ref": "r"}]}, "unknown variable 'r'"),
        ({"command": ["x"], "env": {"A": "{ports.x}"}}, "env.A"),
        ({"command": ["x"], "launch_timeout": 0}, "launch_timeout"),
    ],
)
def test_invalid_definitions(tmp_path, body, reason):
    path = tmp_path / "svc.json"
    path.write_text(json.dumps(body))
    with pytest.raises(DefinitionError) as info:
        load_definition(path)
    assert reason in str(info.value) and str(path) in str(info.value)


def test_noop_needs_no_command(tmp_path):
    path = tmp_path / "n.json"
    path.write_text('{"noop": true}')
    assert load_definition(path).noop


@pytest.mark.parametrize("content, reason", [("{", "invalid JSON"), ("[1]", "JSON object"), (b"\xff\xfe", "UTF-8")])
def test_unreadable_files(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DefinitionError, match=reason):
        load_definition(path)


def test_schema_file_is_in_sync_with_the_models():
    assert SCHEMA_FILE.read_text() == json_schema_text(), "run: python -m krunner.services.service_def > service-defs/schema.json"


def test_library_validates_against_schema_and_models():
    schema = json.loads(SCHEMA_FILE.read_text())
    files = sorted((REPO / "service-defs").glob("*.json"))
    names = {p.stem for p in files}
    assert {"jupyter", "jupyterlab", "tensorboard"} <= names
    for path in files:
        if path.name == "schema.json":
            continue
        jsonschema.validate(json.loads(path.read_text()), schema)
        load_definition(path)


# ----------------------------------------------------------------------------- actions


def _run(actions: list[dict], variables: dict | None = None, cwd: str = "/tmp") -> dict:
    definition = ServiceDefinition.model_validate({"command": ["x"], "prestart": actions})
    ctx = ActionContext(dict(variables or {"ports": [1234], "runtime_path": "py"}), dict(os.environ), cwd, "svc")
    asyncio.run(run_prestart(definition.prestart_actions, ctx))
    return ctx.variables


def test_write_file_appends_and_sets_mode(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old\n")
    _run([{"action": "write_file", "args": {"filename": str(tmp_path / "f.txt"), "body": ["p={ports[0]}", "{{x}}"], "append": True, "mode": "600"}}])
    assert target.read_text() == "old\np=1234\n{x}\n"
    assert target.stat().st_mode & 0o777 == 0o600
    _run([{"action": "write_file", "args": {"filename": str(target), "body": ["new"]}}])
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o644


def test_write_tempfile_ref_and_mkdir(tmp_path):
    variables = _run(
        [
            {"action": "write_tempfile", "args": {"body": ["a={ports[0]}\n", "b"]}, "ref": "tmp"},
            {"action": "mkdir", "args": {"path": str(tmp_path / "x" / "{ports[0]}")}},
        ]
    )
    assert Path(variables["tmp"]).read_text() == "a=1234\nb" and variables["tmp"].endswith(".py")
    assert (tmp_path / "x" / "1234").is_dir()
    os.unlink(variables["tmp"])


def test_run_command_result_failure_and_timeout():
    variables = _run([{"action": "run_command", "args": {"command": [sys.executable, "-c", "print('hi {ports[0]}')"]}, "ref": "r"}])
    assert variables["r"] == {"out": "hi 1234\n", "err": ""}
    with pytest.raises(ActionFailed, match="exited with 3: boom"):
        _run([{"action": "run_command", "args": {"command": ["sh", "-c", "echo boom >&2; exit 3"]}}])
    variables = _run([{"action": "run_command", "args": {"command": ["sh", "-c", "exit 3"], "check": False}, "ref": "r"}])
    assert variables["r"]["out"] == ""
    with pytest.raises(ActionFailed, match="did not finish within 0.2 s"):
        _run([{"action": "run_command", "args": {"command": ["sleep", "5"], "timeout": 0.2}}])
    with pytest.raises(ActionFailed, match="command not found"):
        _run([{"action": "run_command", "args": {"command": ["/no/such/tool"]}}])


def test_log_accepts_body_and_message(caplog):
    caplog.set_level("INFO", logger="krunner.services.actions")
    _run([{"action": "log", "args": {"body": "via body {ports[0]}"}}, {"action": "log", "args": {"message": "via message"}}])
    assert "via body 1234" in caplog.text and "via message" in caplog.text


def test_refs_do_not_leak_between_starts():
    first = _run([{"action": "write_tempfile", "args": {"body": ["x"]}, "ref": "secret"}])
    second = _run([])
    assert "secret" in first and "secret" not in second
    os.unlink(first["secret"])
