"""`bai-imagekit test` option handling that needs no Docker: test files per image, test-file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagekit.commands.test import _test_files
from imagekit.errors import UsageError
from imagekit.smoke.testfile import SCHEMA_PATH, json_schema_text, load_test_file


def test_test_files_common_and_per_image(tmp_path):
    common, per_image = _test_files(["all.toml", "b:1=b.toml"], ["a:1", "b:1"], lambda p: p.name)
    assert common == "all.toml" and per_image == {"b:1": "b.toml"}


@pytest.mark.parametrize("specs, message", [
    (["x.toml", "y.toml"], "given twice"),
    (["c:1=c.toml"], "not one of the images"),
])
def test_test_file_usage_errors(specs, message):
    with pytest.raises(UsageError, match=message):
        _test_files(specs, ["a:1", "b:1"], lambda p: p)


def test_test_file_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text('[[commands]]\nname = "x"\nrun = "true"\nstdout = "("\n')
    with pytest.raises(UsageError, match=r"t\.toml: commands\.0\.stdout: .*invalid regular expression"):
        load_test_file(bad)
    bad.write_text('[[files]]\npath = "relative"\n')
    with pytest.raises(UsageError, match="must be absolute"):
        load_test_file(bad)


def test_good_test_file_and_schema_in_sync(tmp_path):
    good = tmp_path / "t.toml"
    good.write_text('[[commands]]\nname = "sh"\nrun = "echo hi"\nexit-code = 0\n\n[[files]]\npath = "/bin/sh"\nexecutable = true\n')
    parsed = load_test_file(good)
    assert parsed.commands[0].argv() == ["/bin/sh", "-c", "echo hi"] and parsed.files[0].executable is True
    assert json.loads(Path(SCHEMA_PATH).read_text()) == json.loads(json_schema_text())
