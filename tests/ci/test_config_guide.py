"""docs/config.md cannot rot: its example file is a valid configuration, its ```sh blocks run in
order in one shell with that file in the working directory, its error samples are what the tool
prints, and every key of the file is in its table."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema

from imagekit.config.model import json_schema

from .guides import REPO, blocks, run_sh_blocks


def test_the_guide_runs(tmp_path: Path):
    (example,) = blocks("config.md", "toml")
    jsonschema.validate(tomllib.loads(example), json_schema())
    (tmp_path / ".bai-imagekit.toml").write_text(example)
    out = run_sh_blocks("config.md", tmp_path)
    assert ".bai-imagekit.toml: ok" in out.stdout
    assert 'fail-on = "warning"' in out.stdout and "# file:.bai-imagekit.toml" in out.stdout
    assert "validate exited 1" in out.stdout and "warning BAI031" in out.stdout
    merged = json.loads((tmp_path / "merged.json").read_text())["values"]
    assert merged["fail-on"] == {"value": "error", "source": "flag"}
    assert merged["ca-bundle"]["value"] == str(tmp_path / "certs" / "corporate-ca.pem")
    assert merged["rules.disabled.BAI204"]["source"] == "file:.bai-imagekit.toml"
    assert (tmp_path / ".bai-imagekit.schema.json").is_file()  # written by `config schema -o`
    assert json.loads((tmp_path / ".bai-imagekit.schema.json").read_text()) == json_schema()


def test_every_key_is_documented():
    text = (REPO / "docs" / "config.md").read_text()
    schema = json_schema()
    keys = [k for k, v in schema["properties"].items() if "$ref" not in v or k != "rules"]
    for key in keys:
        row = f"| `[{key}]`" if schema["properties"][key].get("type") == "object" else f"| `{key}`"
        assert row in text, key
    for key in schema["$defs"]["RulesConfig"]["properties"]:
        assert f"| `[rules.{key}]`" in text, key


def test_the_error_samples_are_real(tmp_path: Path, monkeypatch, capsys):
    import pytest

    from imagekit.cli import main

    (sample,) = blocks("config.md", "text")
    files = {
        ".bai-imagekit.toml:2:": (".bai-imagekit.toml", 'fail-on = "error"\nfial-on = 1\n'),
        ".bai-imagekit.toml:5:": (".bai-imagekit.toml", '[rules.severity]\nBAI031 = "info"\n\n[rules.disabled]\n'
                                  'BAI998 = "no such rule"\n'),
        "pyproject.toml:6:": ("pyproject.toml", '[project]\nname = "x"\n\n[tool.bai-imagekit]\nrunner = "stock"\n'
                              "runnr = 1\n"),
    }
    monkeypatch.chdir(tmp_path)
    for line in sample.strip().splitlines():
        prefix = next(p for p in files if line.startswith(p))
        name, text = files[prefix]
        for old in tmp_path.iterdir():
            old.unlink()
        (tmp_path / name).write_text(text)
        with pytest.raises(SystemExit) as exc:
            main(["config", "check"])
        assert exc.value.code == 2
        assert capsys.readouterr().err.strip() == line
