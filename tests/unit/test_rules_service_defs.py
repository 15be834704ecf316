"""Service-def file rules (BAI2xx): label <-> files, krunner's loader, templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagekit.findings import Location
from imagekit.kernel_inputs import KernelInputs, ServiceDefSource
from imagekit.rules import service_defs
from imagekit.rules.service_defs import key_line
from krunner.services.service_def import DefinitionError, load_definition

REPO = Path(__file__).resolve().parents[2]
LABEL = "ai.backend.service-ports"
LABEL_AT = Location(file="Dockerfile", line=9)
GOOD_DEF = {"command": ["/usr/bin/app", "--port", "{ports[0]}"]}


def source(name: str, content, line: int | None = None) -> ServiceDefSource:
    text = content if isinstance(content, str) or content is None else json.dumps(content, indent=2)
    return ServiceDefSource(name, Location(file=f"service-defs/{name}.json", line=line), text)


def run(ports: str | None, defs: dict | None, **labels: str) -> list:
    label_map = {k.replace("_", "-"): v for k, v in labels.items()}
    label_map = {f"ai.backend.{k}": v for k, v in label_map.items()}
    if ports is not None:
        label_map[LABEL] = ports
    sources = None if defs is None else {n: c if isinstance(c, ServiceDefSource) else source(n, c) for n, c in defs.items()}
    inputs = KernelInputs("t", label_map, {LABEL: LABEL_AT}, Location(file="Dockerfile"), service_defs=sources)
    return service_defs.check(inputs)


def rules(*args, **kwargs) -> list[str]:
    return sorted(f.rule for f in run(*args, **kwargs))


def test_nothing_to_check_without_def_information():
    assert run("app:http:8080", None) == []


def test_matching_label_and_files_are_clean():
    assert run("app:http:8080,web:preopen:9000", {"app": GOOD_DEF}) == []


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "service-defs").glob("*.json") if p.stem != "schema"))
def test_the_repositorys_library_defs_pass(name):
    text = (REPO / "service-defs" / f"{name}.json").read_text(encoding="utf-8")
    assert run(f"{name}:http:8080", {name: text}) == []


# ----------------------------------------------------------------------------- label <-> files


def test_missing_def_points_at_the_label():
    (f,) = run("app:http:8080", {})
    assert f.rule == "BAI201" and f.location == LABEL_AT and "service-defs/app.json" in f.message


@pytest.mark.parametrize("proto", ["http", "tcp", "vnc", "rdp"])
def test_every_spawned_protocol_needs_a_def(proto):
    assert rules(f"app:{proto}:8080", {}) == ["BAI201"]


def test_intrinsic_preopen_and_pty_need_no_def():
    assert run("sshd:tcp:2222,ttyd:http:7682,web:preopen:9000,ipython:pty:3000", {}) == []


def test_python_fallback_names_get_a_note():
    (f,) = run("jupyter:http:8091", {}, runtime_type="python")
    assert "krunner has none" in f.message


def test_name_mismatch_is_reported_on_both_sides():
    findings = run("nniboard:http:8080", {"nni": GOOD_DEF})
    assert sorted(f.rule for f in findings) == ["BAI201", "BAI204"]
    assert "there is nni.json" in next(f for f in findings if f.rule == "BAI201").message


def test_dotted_def_can_never_be_reached():
    (f,) = run("", {"foo.bar": GOOD_DEF})
    assert f.rule == "BAI204" and "'.'" in f.message and f.location.file == "service-defs/foo.bar.json"


@pytest.mark.parametrize("proto", ["preopen", "pty"])
def test_dead_defs(proto):
    (f,) = run(f"app:{proto}:8080", {"app": GOOD_DEF})
    assert f.rule == "BAI203" and proto in f.message


def test_a_def_used_by_any_spawned_entry_is_not_dead():
    assert rules("app:pty:3000,app:http:8080", {"app": GOOD_DEF}) == []


# ----------------------------------------------------------------------------- loading


BROKEN = {
    "unknown-key": '{\n  "command": ["x"],\n  "comand": ["y"]\n}\n',
    "no-command": '{\n  "shell": "sh"\n}\n',
    "bad-json": '{\n  "command": ["x"],\n}\n',
    "not-object": "[1, 2]\n",
    "bad-mode": '{\n  "prestart": [\n    {"action": "write_file",\n     "args": {"filename": "/tmp/x", "body": [],\n              "mode": 644}}\n  ],\n  "command": ["x"]\n}\n',
    "bad-template": '{\n  "command": ["x",\n    "{ports.count}"]\n}\n',
    "unknown-action": '{\n  "prestart": [{"action": "nope", "args": {}}],\n  "command": ["x"]\n}\n',
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_defs_report_krunners_own_reason(name, tmp_path):
    path = tmp_path / f"{name}.json"
    path.write_text(BROKEN[name], encoding="utf-8")
    with pytest.raises(DefinitionError) as exc:
        load_definition(path)
    findings = run(f"{name}:http:8080", {name: BROKEN[name]})
    assert [f.rule for f in findings] == ["BAI202"]
    assert findings[0].message == f"{name}.json: {exc.value.reason}"


@pytest.mark.parametrize(
    "name, line",
    [("unknown-key", 3), ("bad-json", 3), ("bad-mode", 5), ("bad-template", 2), ("unknown-action", 2), ("no-command", None)],
)
def test_broken_defs_point_at_the_line(name, line):
    (f,) = run(f"{name}:http:8080", {name: BROKEN[name]})
    assert f.location == Location(file=f"service-defs/{name}.json", line=line)


def test_line_is_relative_to_the_sources_own_line():
    src = source("app", BROKEN["unknown-key"], line=10)
    (f,) = run("app:http:8080", {"app": src})
    assert f.location.line == 12


def test_unreadable_def():
    src = ServiceDefSource("app", Location(file="service-defs/app.json"), None, error="permission denied")
    (f,) = run("app:http:8080", {"app": src})
    assert f.rule == "BAI202" and "permission denied" in f.message


def test_key_line_follows_the_path_in_order():
    text = '{\n "a": {"mode": 1},\n "b": {\n  "mode": 2\n }\n}'
    assert key_line(text, ["b", "mode"]) == 4
    assert key_line(text, ["a", "mode"]) == 2
    assert key_line(text, ["zzz"]) is None


# ----------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    "url",
    ["{protocol}://{host}:{port}/", "{protocol}://{host}:{port}/vnc.html?host={host}&port={port}", "http://x/{{literal}}"],
)
def test_url_template_good(url):
    assert run("app:http:8080", {"app": {**GOOD_DEF, "url_template": url}}) == []


@pytest.mark.parametrize("url, shown", [("{scheme}://{host}", "{scheme}"), ("{}/x", "{}"), ("{ports[0]}", "{ports[0]}"), ("{protocol", "malformed")])
def test_url_template_bad(url, shown):
    text = json.dumps({**GOOD_DEF, "url_template": url}, indent=2)
    (f,) = run("app:http:8080", {"app": text})
    assert f.rule == "BAI205" and shown in f.message
    assert f.location.line == key_line(text, ["url_template"])


@pytest.mark.parametrize(
    "ports, expr, bad",
    [("8080", "{ports[0]}", False), ("8080", "{ports[1]}", True), ("8080", "{ports[-1]}", False), ("8080", "{ports[-2]}", True),
     ("[8080,8081]", "{ports[1]}", False), ("[8080,8081]", "${{ ports[2] }}", True)],
)
def test_port_index(ports, expr, bad):
    definition = {"command": ["/usr/bin/app", "--port", "{ports[0]}", "--extra", expr]}
    assert rules(f"app:tcp:{ports}", {"app": definition}) == (["BAI206"] if bad else [])


def test_port_index_in_prestart_and_env():
    definition = {
        "prestart": [{"action": "write_file", "args": {"filename": "/tmp/c", "body": ["port={ports[3]}"]}}],
        "env": {"PORT": "{ports[0]}"},
        "command": ["app"],
    }
    (f,) = run("app:http:8080", {"app": definition})
    assert f.rule == "BAI206" and "prestart[0].args.body" in f.message


@pytest.mark.parametrize(
    "command, unused",
    [
        (["app", "--port", "{ports[0]}"], False),
        (["app", "--port", "8080"], False),  # hard-coded, but it is the declared port
        (["app", "--listen=0.0.0.0:8080"], False),
        (["app", "--port", "18080"], True),
        (["app"], True),
        ("app --port ${{ ports[0] }}", False),
    ],
)
def test_port_usage(command, unused):
    assert rules("app:http:8080", {"app": {"command": command}}) == (["BAI207"] if unused else [])


def test_noop_defs_need_no_port():
    assert run("app:http:8080", {"app": {"noop": True}}) == []
