"""The jail policy model, its legacy conversion, line numbers, schema file and the `policy` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagekit.findings import Location
from imagekit.kernel_inputs import KernelInputs
from imagekit.policy import (
    SCHEMA_PATH,
    JailPolicy,
    PolicyError,
    default_policy,
    dump_policy,
    json_schema,
    load_policy,
    parse_policy,
    schema_text,
)
from imagekit.rules import jail_policy

# the shape of the policy files in backend.ai-kernels (Go jail era)
GO_ERA = """\
whitelist_paths:
  OP_OPEN: ["*"]
  OP_ACCESS: ["*"]
  OP_EXEC: ["*"]
  OP_STAT: ["*"]
  OP_CHMOD: ["/home/work/*", "/tmp/*"]
exec_allowance: -1
fork_allowance: -1
max_child_procs: 32
extra_envs: []
preserved_env_keys:
  - HOME
  - PATH
diff_to_default: true
allowed_syscalls:
"""


def rules_for(text: str) -> list:
    inputs = KernelInputs(target="t", labels={}, policy_text=text, policy_location=Location(file="policy.yml"))
    return jail_policy.check(inputs)


def ids(findings) -> set[str]:
    return {f.rule for f in findings}


def test_default_round_trips_through_dump():
    text = dump_policy(default_policy())
    assert text.startswith("#") and "# Extra syscalls" in text
    assert parse_policy(text) == default_policy()
    assert rules_for(text) == []


def test_model_requires_every_key_and_forbids_unknown():
    data = default_policy().model_dump()
    del data["traced_syscalls"]
    with pytest.raises(Exception):
        JailPolicy.model_validate(data)
    data = default_policy().model_dump() | {"bogus": 1}
    with pytest.raises(Exception):
        JailPolicy.model_validate(data)


def test_legacy_layout_is_converted_with_warnings():
    loaded = load_policy(GO_ERA)
    assert loaded.policy is not None
    assert loaded.policy.whitelist_paths.OpChmod == ["/home/work/*", "/tmp/*"]
    assert loaded.policy.allowed_syscalls == [] and loaded.policy.traced_syscalls == []
    assert loaded.errors == []
    messages = " ".join(i.message for i in loaded.legacy)
    assert "OP_OPEN → OpOpen" in messages and "allowed_syscalls" in messages and "traced_syscalls" in messages
    by_path = {i.path: i.line for i in loaded.legacy}
    assert by_path[("whitelist_paths",)] == 1 and by_path[("allowed_syscalls",)] == 15
    findings = rules_for(GO_ERA)
    assert ids(findings) == {"BAI406"} and all(f.severity.value == "warning" for f in findings)


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("whitelist_paths: [\n", 2, "not valid YAML"),
        ("a: 1\n\tb: 2\n", 2, "not valid YAML"),
        ("exec_allowance: 1\nexec_allowance: 2\n", 2, "duplicate key"),
    ],
)
def test_yaml_errors_carry_the_line(text, line, fragment):
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert info.value.line == line and fragment in str(info.value)
    assert f"line {line}" in str(info.value)


def test_validation_errors_map_to_lines():
    text = dump_policy(default_policy())
    lines = text.splitlines()
    idx = next(i for i, s in enumerate(lines) if s.startswith("fork_allowance"))
    lines[idx] = 'fork_allowance: "many"'
    env_idx = next(i for i, s in enumerate(lines) if s.startswith("extra_envs"))
    lines[env_idx] = "extra_envs: [NOEQUALS]"
    loaded = load_policy("\n".join(lines) + "\n")
    got = {(i.kind, i.line) for i in loaded.errors}
    assert ("type", idx + 1) in got and ("env", env_idx + 1) in got


def test_schema_file_is_in_sync_with_the_model():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "run `python -m imagekit.policy` to regenerate imagekit/schemas/jail-policy.schema.json"
    )
    schema = json_schema()
    assert set(schema["required"]) == set(JailPolicy.model_fields)


def test_schema_accepts_the_default():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    jsonschema.validate(yaml.safe_load(dump_policy(default_policy())), json.loads(SCHEMA_PATH.read_text()))


@pytest.mark.parametrize(
    "edit, rule_id",
    [
        (lambda t: t.replace("  OpExec:", "  OpExecute:"), "BAI402"),
        (lambda t: t.replace("exec_allowance: -1", "exec_allowance: -1\nexec_allowence: 3"), "BAI403"),
        (lambda t: t.replace("max_child_procs: 512", ""), "BAI404"),
        (lambda t: t.replace("diff_to_default: true", "diff_to_default: yes"), "BAI405"),
        (lambda t: t.replace("fork_allowance: -1", "fork_allowance: -7"), "BAI407"),
        (lambda t: t.replace("max_child_procs: 512", "max_child_procs: 0"), "BAI408"),
        (lambda t: t.replace("extra_envs: []", "extra_envs: [JUSTANAME]"), "BAI409"),
        (lambda t: t.replace('- "/tmp/*"', '- "/tmp/[ab"'), "BAI410"),
        (lambda t: t.replace('- "/tmp/*"', '- "tmp/*"'), "BAI411"),
        (lambda t: t.replace("allowed_syscalls: []", "allowed_syscalls: [ptrace]"), "BAI412"),
        (lambda t: t.replace("traced_syscalls: []", "traced_syscalls: [open]"), "BAI413"),
        (lambda t: t.replace("diff_to_default: true", "diff_to_default: false"), "BAI414"),
        (lambda t: t.replace('  - "PATH"\n', "").replace("diff_to_default: true", "diff_to_default: false"), "BAI415"),
        (lambda t: "key: [unclosed\n", "BAI401"),
    ],
)
def test_each_rule_fires(edit, rule_id):
    findings = rules_for(edit(dump_policy(default_policy())))
    assert rule_id in ids(findings), findings
    assert all(f.location is not None and f.location.file == "policy.yml" and f.location.line for f in findings)


def test_stray_character_before_whitelist_paths():
    text = "\u314a" + GO_ERA  # the python-tensorflow policy's corrupt first key
    findings = rules_for(text)
    unknown = next(f for f in findings if f.rule == "BAI403")
    assert "Did you mean 'whitelist_paths'" in unknown.hint and unknown.location.line == 1
    missing = next(f for f in findings if f.rule == "BAI404")
    assert "whitelist_paths" in missing.message


def test_no_policy_no_findings():
    assert jail_policy.check(KernelInputs(target="t", labels={})) == []


# --- the command line ------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imagekit.cli", "policy", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_policy_init_stdout_and_file(tmp_path):
    out = run_cli("init", cwd=tmp_path)
    assert out.returncode == 0 and parse_policy(out.stdout) == default_policy()
    target = tmp_path / "policy.yml"
    assert run_cli("init", "-o", str(target), cwd=tmp_path).returncode == 0
    assert target.read_text() == out.stdout
    target.write_text("keep me")
    refused = run_cli("init", "-o", str(target), cwd=tmp_path)
    assert refused.returncode == 2 and "--force" in refused.stderr and target.read_text() == "keep me"
    assert run_cli("init", "-o", str(target), "--force", cwd=tmp_path).returncode == 0
    assert target.read_text() == out.stdout


def test_policy_check_exit_codes(tmp_path):
    good = tmp_path / "good.yml"
    good.write_text(dump_policy(default_policy()))
    assert run_cli("check", str(good), cwd=tmp_path).returncode == 0

    legacy = tmp_path / "legacy.yml"
    legacy.write_text(GO_ERA)
    warned = run_cli("check", str(legacy), cwd=tmp_path)
    assert warned.returncode == 0 and "BAI406" in warned.stdout
    assert run_cli("check", "--strict", str(legacy), cwd=tmp_path).returncode == 1

    bad = tmp_path / "bad.yml"
    bad.write_text("exec_allowance: [\n")
    failed = run_cli("check", "--format", "json", str(bad), cwd=tmp_path)
    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    assert report[0]["rule"] == "BAI401" and report[0]["location"] == {"file": str(bad), "line": 2, "column": None}

    missing = run_cli("check", str(tmp_path / "absent.yml"), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_policy_help():
    out = subprocess.run([sys.executable, "-m", "imagekit.cli", "policy", "check", "--help"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0 and "--format" in out.stdout and "Exit codes" in out.stdout
