"""The project configuration file (imagekit.config): discovery, strict reading with file:line errors,
flags winning over the file, where each value came from, the rule settings applied to findings, the
JSON schema kept equal to the model. The CLI is driven in-process (``imagekit.cli.main``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest

from imagekit.cli import main
from imagekit.config import ConfigError, find_config, load_config
from imagekit.config.model import json_schema

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "imagekit" / "schemas" / "bai-imagekit.schema.json"


def cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    return exc.value.code


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def kernel(tmp_path, monkeypatch, capsys) -> Path:
    """A scaffolded kernel dir in *tmp_path* (the working directory); its one finding is BAI031 (info)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("BAI_IMAGEKIT_CA_BUNDLE", raising=False)
    assert cli("init", "k", "--runtime", "python") == 0
    capsys.readouterr()
    return tmp_path / "k"


# ------------------------------------------------------------------------------------ discovery


def test_found_from_the_working_directory_upward(tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_config(deep) is None or not str(find_config(deep)).startswith(str(tmp_path))
    top = write(tmp_path / ".bai-imagekit.toml", 'fail-on = "warning"\n')
    assert find_config(deep) == top
    # a pyproject.toml without [tool.bai-imagekit] is not a configuration file
    write(tmp_path / "a" / "pyproject.toml", '[project]\nname = "x"\n')
    assert find_config(deep) == top
    near = write(tmp_path / "a" / "b" / "pyproject.toml", '[tool.bai-imagekit]\nrunner = "krunner"\n')
    assert find_config(deep) == near
    assert load_config(near).config.runner.value == "krunner" and load_config(near).table == "tool.bai-imagekit"
    # in one directory, .bai-imagekit.toml wins over pyproject.toml
    own = write(tmp_path / "a" / "b" / ".bai-imagekit.toml", "")
    assert find_config(deep) == own


@pytest.mark.parametrize("text, message", [
    ('fail-on = "warning"\nbogus = 1\n', ".bai-imagekit.toml:2: error: unknown key 'bogus' in the top-level table"),
    ('[rules]\nseverity = {}\nBAI031 = "info"\n', ".bai-imagekit.toml:3: error: unknown key 'BAI031' in [rules]"),
    ('[rules.severity]\nBAI031 = "info"\n[rules.disabled]\n# why\nBAI998 = "no such rule"\n',
     ".bai-imagekit.toml:5: error: unknown rule BAI998 in [rules.disabled]"),
    ('[rules.disabled]\nBAI031 = "  "\n', "error: rules.disabled: BAI031: a disabled rule needs a reason"),
    ('[rules.severity]\nBAI031 = "fatal"\n', ".bai-imagekit.toml:2: error: rules.severity.BAI031: 'fatal': expected"),
    ('[rules.severity]\nbai031 = "info"\n', "'bai031' is not a rule id"),
    ('[rules.disabled]\nBAI503 = "no"\n', "BAI503 cannot be disabled"),
    ('fail-on = "warn"\n', ".bai-imagekit.toml:1: error: fail-on: 'warn': expected 'error', 'warning' or 'info'"),
    ('max-size = "huge"\n', ".bai-imagekit.toml:1: error: max-size: size 'huge'"),
    ('fail-on = \n', ".bai-imagekit.toml:1:11: error: not valid TOML"),
    ('[build-args]\n"A B" = "1"\n', "error: build-args: 'A B' is not a build argument name"),
])
def test_a_broken_file_is_exit_2_with_file_line_error(kernel, capsys, text, message):
    write(kernel.parent / ".bai-imagekit.toml", text)
    assert cli("validate", "k") == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_pyproject_errors_name_the_tool_table(kernel, capsys):
    write(kernel.parent / "pyproject.toml", '[project]\nname = "x"\n\n[tool.bai-imagekit]\nrunner = "stock"\nrunnr = 1\n')
    assert cli("validate", "k") == 2
    assert "pyproject.toml:6: error: unknown key 'runnr' in [tool.bai-imagekit]" in capsys.readouterr().err


def test_explicit_config_and_no_config(kernel, capsys):
    write(kernel.parent / ".bai-imagekit.toml", "bogus = 1\n")
    assert cli("validate", "k", "--no-config") == 0
    other = write(kernel.parent / "ci" / "imagekit.toml", '[rules.severity]\nBAI031 = "error"\n')
    assert cli("validate", "k", "--config", str(other)) == 1
    assert cli("validate", "k", "--config", "missing.toml") == 2
    assert "missing.toml: error: --config: no such file" in capsys.readouterr().err
    assert cli("validate", "k", "--config", str(other), "--no-config") == 2  # not both


# ------------------------------------------------------------------------------------ rules and threshold


def test_severity_overrides_and_disabled_rules_apply_to_findings(kernel, capsys):
    assert cli("validate", "k", "--no-config", "--format", "json") == 0
    (finding,) = json.loads(capsys.readouterr().out)["findings"]
    assert (finding["rule"], finding["severity"]) == ("BAI031", "info")

    write(kernel.parent / ".bai-imagekit.toml", '[rules.severity]\nBAI031 = "error"\n')
    assert cli("validate", "k", "--format", "json") == 1
    (finding,) = json.loads(capsys.readouterr().out)["findings"]
    assert (finding["rule"], finding["severity"]) == ("BAI031", "error")

    write(kernel.parent / ".bai-imagekit.toml", '[rules.disabled]\nBAI031 = "we set base-distro at build time"\n')
    assert cli("validate", "k", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_fail_on_from_the_file_and_the_flag_wins(kernel, capsys):
    write(kernel.parent / ".bai-imagekit.toml", 'fail-on = "info"\n')
    assert cli("validate", "k") == 1
    assert "info BAI031" in capsys.readouterr().out
    assert cli("validate", "k", "--fail-on", "error") == 0


def test_the_rule_settings_reach_every_target_kind(kernel, capsys):
    """The settings are applied where every target's findings come from (also a Dockerfile alone)."""
    dockerfile = write(kernel.parent / "bad.Dockerfile", 'FROM scratch\nLABEL ai.backend.kernelspec="x"\n')
    assert cli("validate", str(dockerfile), "--no-config", "--format", "json") == 1
    rules = {f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert rules
    disabled = "\n".join(f'{r} = "test"' for r in sorted(rules))
    write(kernel.parent / ".bai-imagekit.toml", f"[rules.disabled]\n{disabled}\n")
    assert cli("validate", str(dockerfile), "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


# ------------------------------------------------------------------------------------ --print-config


def test_print_config_shows_each_value_and_its_source(kernel, capsys, monkeypatch):
    write(kernel.parent / ".bai-imagekit.toml", """
        #:schema ./.bai-imagekit.schema.json
        fail-on = "warning"
        runner = "krunner"
        max-size = "2GiB"
        ca-bundle = "certs/ca.pem"

        [build-args]
        PYTHON_VERSION = "3.12"

        [rules.severity]
        BAI031 = "warning"

        [rules.disabled]
        BAI204 = "the def ships with the base image"
    """)
    assert cli("validate", "--print-config", "--format", "json", "--fail-on", "error") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config_file"] == str(kernel.parent / ".bai-imagekit.toml")
    values = doc["values"]
    src = "file:.bai-imagekit.toml"
    assert values["fail-on"] == {"value": "error", "source": "flag"}
    assert values["runner"] == {"value": "krunner", "source": src}
    assert values["max-size"] == {"value": "2GiB", "source": src}
    assert values["ca-bundle"] == {"value": str(kernel.parent / "certs" / "ca.pem"), "source": src}  # relative to the file
    assert values["build-args.PYTHON_VERSION"] == {"value": "3.12", "source": src}
    assert values["rules.severity.BAI031"] == {"value": "warning", "source": src}
    assert values["rules.disabled.BAI204"] == {"value": "the def ships with the base image", "source": src}

    monkeypatch.setenv("BAI_IMAGEKIT_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert cli("validate", "--print-config") == 0
    text = capsys.readouterr().out
    assert text.startswith("# bai-imagekit validate: configuration file: .bai-imagekit.toml\n")
    assert 'fail-on = "warning"' in text and f"# {src}" in text
    assert 'ca-bundle = "/etc/ssl/certs/ca-certificates.crt"' in text and "# env:BAI_IMAGEKIT_CA_BUNDLE" in text
    assert "[rules.disabled]\nBAI204" in text


def test_print_config_without_a_file_shows_the_defaults(kernel, capsys):
    assert cli("validate", "--print-config", "--format", "json", "--runner", "stock") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config_file"] is None
    assert doc["values"]["fail-on"] == {"value": "error", "source": "default"}
    assert doc["values"]["runner"] == {"value": "stock", "source": "flag"}
    assert doc["values"]["max-size"] == {"value": None, "source": "default"}


def test_build_args_and_runner_merge_for_build_and_test(tmp_path, monkeypatch):
    """``build``/``test`` get the file's values in their namespace; a flag wins per key."""
    import argparse

    from imagekit.cli import build_parser
    from imagekit.config import merge

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BAI_IMAGEKIT_CA_BUNDLE", raising=False)
    write(tmp_path / ".bai-imagekit.toml", """
        runner = "stock"
        ca-bundle = "auto"
        [build-args]
        A = "file"
        B = "file"
    """)
    args: argparse.Namespace = build_parser().parse_args(["build", ".", "--build-arg", "B=flag"])
    settings = merge(args, "build")
    assert args.build_arg == ["A=file", "B=file", "B=flag"]  # a later KEY= wins in build's own parsing
    assert settings.values["build-args.B"].source == "flag" and settings.values["build-args.A"].source.startswith("file:")
    assert (args.runner, args.ca_bundle) == ("stock", "auto")

    args = build_parser().parse_args(["test", "img:1"])
    merge(args, "test")
    assert args.runner == "stock"
    (tmp_path / ".bai-imagekit.toml").write_text("")
    args = build_parser().parse_args(["test", "img:1"])
    assert merge(args, "test").values["runner"].source == "default" and args.runner == "krunner"


# ------------------------------------------------------------------------------------ schema and --sarif


def test_the_shipped_schema_is_the_models():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "run: python -m imagekit.config schema > " + str(
        SCHEMA_FILE.relative_to(REPO))


def test_the_schema_accepts_what_the_model_accepts_and_rejects_unknown_keys():
    import tomllib

    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    good = tomllib.loads('"$schema" = "x"\nfail-on = "warning"\nrunner = "stock"\n[build-args]\nA = "1"\n'
                        '[rules.severity]\nBAI031 = "error"\n[rules.disabled]\nBAI204 = "why"\n')
    jsonschema.validate(good, schema)
    for bad in ({"bogus": 1}, {"rules": {"disabled": {"BAI204": ""}}}, {"rules": {"severity": {"x": "info"}}},
                {"fail-on": "fatal"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_config_schema_and_check_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli("config", "schema", "-o", "s.json") == 0
    assert json.loads((tmp_path / "s.json").read_text()) == json_schema()
    write(tmp_path / ".bai-imagekit.toml", 'runner = "krunner"\n')
    assert cli("config", "check") == 0
    assert ".bai-imagekit.toml: ok" in capsys.readouterr().out
    write(tmp_path / ".bai-imagekit.toml", 'runner = "other"\n')
    assert cli("config", "check") == 2
    assert ".bai-imagekit.toml:1: error: runner: 'other'" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        load_config(tmp_path / ".bai-imagekit.toml")


def test_validate_writes_sarif_beside_the_annotations(kernel, capsys):
    bad = kernel.parent / "bad"
    import shutil

    shutil.copytree(kernel, bad)
    (bad / "service-defs" / "hello.json").unlink()
    assert cli("validate", "bad", "--no-config", "--format", "github", "--sarif", "out.sarif") == 1
    out = capsys.readouterr().out
    assert "::error file=bad/kernel.toml,line=13,title=BAI201::" in out
    doc = json.loads((kernel.parent / "out.sarif").read_text())
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"BAI201", "BAI031"}


def test_no_target_kind_bypasses_the_rule_settings():
    """Every target's ``findings()`` is the base class's (the one place the settings apply); kinds
    override ``rule_findings()``."""
    import imagekit.registry.target  # noqa: F401  (the registry kind)
    from imagekit.targets import LoadedTarget

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    kinds = list(subclasses(LoadedTarget))
    assert len(kinds) >= 2
    assert [k.__name__ for k in kinds if "findings" in vars(k)] == []


def test_builds_checks_read_the_rule_settings(kernel, capsys):
    """``build`` validates its inputs first: a disabled rule no longer stops it (--dry-run: no engine)."""
    import shutil

    bad = kernel.parent / "bad"
    shutil.copytree(kernel, bad)
    (bad / "service-defs" / "hello.json").unlink()
    assert cli("build", "bad", "--dry-run", "--format", "json") == 1
    assert [f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]] == ["BAI201"]
    write(kernel.parent / ".bai-imagekit.toml", '[rules.disabled]\nBAI201 = "the def comes from the library"\n')
    assert cli("build", "bad", "--dry-run", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
    write(kernel.parent / ".bai-imagekit.toml", "[build-args]\nbad name = 1\n")
    assert cli("build", "bad", "--dry-run") == 2


def test_validate_takes_max_size_and_a_schema_key_from_the_file(tmp_path, monkeypatch):
    from imagekit.cli import build_parser
    from imagekit.commands.validate import registry_options
    from imagekit.config import merge

    monkeypatch.chdir(tmp_path)
    write(tmp_path / ".bai-imagekit.toml", '"$schema" = "./.bai-imagekit.schema.json"\nmax-size = "2GiB"\n')
    args = build_parser().parse_args(["validate", "127.0.0.1:5000/ns/img:1"])
    merge(args, "validate")
    assert registry_options(args).max_size == 2 << 30
    args = build_parser().parse_args(["validate", "127.0.0.1:5000/ns/img:1", "--max-size", "1GiB"])
    assert merge(args, "validate").values["max-size"].source == "flag" and registry_options(args).max_size == 1 << 30
