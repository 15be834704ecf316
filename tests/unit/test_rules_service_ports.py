"""service-ports rules (BAI1xx) and the strict parser shared by the label and service-def rules."""

from __future__ import annotations

import pytest

from imagekit.findings import Location, Severity
from imagekit.kernel_inputs import KernelInputs
from imagekit.rules import service_ports
from imagekit.rules.service_ports import parse_service_ports

LABEL = "ai.backend.service-ports"
WHERE = Location(file="Dockerfile", line=12)


def run(value: str | None, **extra: str) -> list:
    label_map = dict(extra)
    if value is not None:
        label_map[LABEL] = value
    inputs = KernelInputs("t", label_map, {LABEL: WHERE}, Location(file="Dockerfile"))
    return service_ports.check(inputs)


def rules(value: str, **extra: str) -> list[str]:
    return sorted(f.rule for f in run(value, **extra))


# ----------------------------------------------------------------------------- parser

# the agent's strict column of spec §2.3: accepted (True) or "Invalid service-ports format" (False)
STRICT = [
    ("jupyter:http:8080,foo", False),
    ("a:http:8080, b:http:8081", False),
    ("a:tcp:[5000,5005]", True),
    (",a:http:8080", False),
    ("a:http:8080,,b:http:9000", False),
    ("a.b:http:8080", False),
    ("jupyter:http:8080 ", False),
    ("a:HTTP:8080", True),  # syntax is fine; the protocol check rejects it
    ("a:http:8080,a:http:8081", True),
    ("ipython:pty:3000,jupyter:http:8081", True),
    ("a:http:8080,", True),
    ("", True),
    (",", False),
    ("a:http:[8080, 8081]", False),
    ("a:http:[8080", False),
    ("a:http", False),
    ("a:http:8080:1", False),
    ("naïve:http:8080", True),  # \w is Unicode in the agent's regex
]


@pytest.mark.parametrize("value, ok", STRICT)
def test_strict_grammar(value, ok):
    assert (parse_service_ports(value).problems == ()) is ok


def test_parse_entries():
    parsed = parse_service_ports("ipython:pty:3000,jupyter:http:08091,trt:tcp:[8000,8001],")
    assert [(e.name, e.protocol, e.ports, e.multi) for e in parsed.entries] == [
        ("ipython", "pty", (3000,), False),
        ("jupyter", "http", (8091,), False),
        ("trt", "tcp", (8000, 8001), True),
    ]
    assert [e.name for e in parsed.active()] == ["jupyter", "trt"]
    assert parsed.first("trt").ports == (8000, 8001)
    assert parsed.first("ipython") is None


def test_blank_padded_entries_are_still_parsed_for_later_checks():
    parsed = parse_service_ports("a:http:8080, b:http:8081")
    assert [e.name for e in parsed.entries] == ["a", "b"]
    assert len(parsed.problems) == 1 and "whitespace" in parsed.problems[0].reason


# ----------------------------------------------------------------------------- rules


def test_good_label_is_clean():
    assert run("jupyter:http:8091,jupyterlab:http:8090,tensorboard:http:6006,mlflow-ui:preopen:5000") == []
    assert run(None) == []
    assert run("") == []


def test_syntax_errors_point_at_the_label():
    (f,) = run("jupyter:http:8091, tensorboard:http:6006")
    assert f.rule == "BAI101" and f.location == WHERE and f.label == LABEL
    assert "tensorboard:http:6006" in f.message


def test_protocols():
    assert rules("a:HTTP:8080") == ["BAI102"]
    assert "write 'http'" in run("a:HTTP:8080")[0].message
    assert "reserved for the agent" in run("a:internal:8080")[0].message
    for proto in service_ports.PROTOCOLS:
        assert run(f"a:{proto}:8080") == []


@pytest.mark.parametrize("port, ok", [(1024, False), (1025, True), (65534, True), (65535, False), (80, False), (88888, False)])
def test_port_range(port, ok):
    assert rules(f"a:http:{port}") == ([] if ok else ["BAI103"])


@pytest.mark.parametrize("port", sorted(service_ports.RESERVED_PORTS))
def test_reserved_ports(port):
    (f,) = run(f"a:tcp:{port}")
    assert f.rule == "BAI104" and str(port) in f.message


def test_pty_entries_are_not_range_checked_but_flagged():
    assert rules("ipython:pty:22") == ["BAI107"]


def test_duplicates():
    assert rules("a:http:8080,b:tcp:8080") == ["BAI105"]
    assert rules("a:tcp:[8080,8080]") == ["BAI105"]
    assert rules("a:http:8080,a:http:8081") == ["BAI106"]
    assert rules("a:pty:8080,a:http:8080") == ["BAI107"]  # pty entries are dropped before these checks


@pytest.mark.parametrize("name, rule_id", [("gRPC", "BAI108"), ("my_app", "BAI108"), ("naïve", "BAI108"), ("sshd", "BAI109"), ("ttyd", "BAI109"), ("8888", "BAI110")])
def test_names(name, rule_id):
    findings = run(f"{name}:preopen:9000")
    assert [f.rule for f in findings] == [rule_id]
    assert all(f.severity is Severity.WARNING for f in findings)


def test_kebab_suggestion():
    assert "'my-app'" in run("My_App:preopen:9000")[0].message


INFERENCE = {"ai.backend.role": "INFERENCE", "ai.backend.endpoint-ports": "api"}


def test_multi_port_is_fine_on_compute_images():
    assert run("trt:tcp:[8000,8001]") == []
    assert rules("api:preopen:8000,trt:preopen:[9000,9001]", **INFERENCE) == ["BAI111"]


@pytest.mark.parametrize(
    "value, why",
    [
        ("web:preopen:8000", "not declared"),
        ("api:http:8000", "protocol 'http'"),
        ("api:preopen:[8000,8001]", "multi-port"),
    ],
)
def test_endpoints(value, why):
    findings = [f for f in run(value, **INFERENCE) if f.rule == "BAI112"]
    assert len(findings) == 1 and why in findings[0].message
    assert findings[0].label == "ai.backend.endpoint-ports"


def test_endpoints_without_any_service_ports():
    findings = run(None, **INFERENCE)
    assert [f.rule for f in findings] == ["BAI112"]


def test_endpoints_are_ignored_on_non_inference_images():
    assert run("web:preopen:8000", **{"ai.backend.endpoint-ports": "api"}) == []
