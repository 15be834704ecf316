"""kernel.toml: the model, unknown keys with their line, label generation, the committed schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from imagekit.errors import UsageError
from imagekit.kernelspec import SCHEMA_PATH, SpecError, key_lines, load_spec, parse_spec, schema_text

FULL = """\
# a kernel
[kernel]
runtime-type = "python"
runtime-path = "/usr/bin/python3"
features = [
  "batch",
  "uid-match",
]
base-distro = "ubuntu22.04"
corecount-envs = ["OMP_NUM_THREADS", "NPROC"]
accelerators = ["cuda"]

[resources]
min.cpu = 1
min.mem = "1g"
min.cuda.device = 0
max."cuda.shares" = 0.1
preferred.shmem = "64m"

[services]
jupyterlab = { library = true }
custom = { port = 8080, def = "defs/custom.json" }
multi = { ports = [5000, 5001], protocol = "tcp" }
mlflow = { port = 5000, protocol = "preopen" }

[labels]
"org.opencontainers.image.source" = "https://example.com/k"

[policy]
file = "policy.yml"
"""


@pytest.fixture
def kdir(tmp_path: Path) -> Path:
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "custom.json").write_text('{"command": ["true"]}')
    (tmp_path / "policy.yml").write_text("exec_allowance: 0\n")
    return tmp_path


def _spec(kdir: Path, text: str):
    path = kdir / "kernel.toml"
    path.write_text(text)
    return load_spec(path, "kernel.toml")


def test_full_spec_labels_and_lines(kdir):
    spec = _spec(kdir, FULL)
    assert spec.labels == {
        "ai.backend.kernelspec": "1",
        "ai.backend.runtime-type": "python",
        "ai.backend.runtime-path": "/usr/bin/python3",
        "ai.backend.base-distro": "ubuntu22.04",
        "ai.backend.features": "batch uid-match",
        "ai.backend.accelerators": "cuda",
        "ai.backend.envs.corecount": "OMP_NUM_THREADS,NPROC",
        "ai.backend.resource.min.cpu": "1",
        "ai.backend.resource.min.mem": "1g",
        "ai.backend.resource.min.cuda.device": "0",
        "ai.backend.resource.max.cuda.shares": "0.1",
        "ai.backend.resource.preferred.shmem": "64m",
        "ai.backend.service-ports": "jupyterlab:http:8090,custom:http:8080,multi:tcp:[5000,5001],mlflow:preopen:5000",
        "org.opencontainers.image.source": "https://example.com/k",
    }
    lines = {k: loc.line for k, loc in spec.label_locations.items()}
    assert lines["ai.backend.runtime-type"] == 3
    assert lines["ai.backend.features"] == 5
    assert lines["ai.backend.resource.min.cuda.device"] == 16
    assert lines["ai.backend.resource.max.cuda.shares"] == 17
    assert lines["ai.backend.service-ports"] == 20
    assert lines["org.opencontainers.image.source"] == 27
    assert lines["ai.backend.kernelspec"] == 2  # defaulted: the [kernel] header
    assert all(loc.file == "kernel.toml" for loc in spec.label_locations.values())
    by_name = {s.name: s for s in spec.services}
    assert by_name["jupyterlab"].source == "library" and by_name["jupyterlab"].def_path.name == "jupyterlab.json"
    assert by_name["custom"].source == "file" and by_name["custom"].def_path == (kdir / "defs" / "custom.json").resolve()
    assert by_name["mlflow"].def_path is None
    assert by_name["custom"].location.line == 22
    assert spec.policy.kind == "file" and spec.policy.path == (kdir / "policy.yml").resolve()


def test_minimal_spec(kdir):
    spec = _spec(kdir, "")
    assert spec.labels == {"ai.backend.kernelspec": "1"}
    assert spec.services == [] and spec.policy.kind == "default"


def test_service_def_from_the_directory_by_name(kdir):
    (kdir / "service-defs").mkdir()
    (kdir / "service-defs" / "web.json").write_text('{"command": ["true"]}')
    spec = _spec(kdir, "[services]\nweb = { port = 8000 }\nother = { port = 8001 }\n")
    web, other = spec.services
    assert web.source == "dir" and web.def_path == kdir / "service-defs" / "web.json"
    assert other.source == "none" and other.def_path is None


@pytest.mark.parametrize(
    "text, line, key",
    [
        ('[kernel]\nruntime-type = "python"\nruntime-typo = "x"\n', 3, "'runtime-typo' in [kernel]"),
        ("[kernel]\n\n[resourcez]\ncpu = 1\n", 3, "'resourcez'"),
        ("[services]\nweb = { port = 80, proto = \"http\" }\n", 2, "'proto' in [services.web]"),
        ("[services.web]\nport = 8000\n\n# c\nlibary = true\n", 5, "'libary' in [services.web]"),
        ("[resources.preferred]\nshmem = \"64m\"\ncpu = 1\n", 3, "'cpu' in [resources.preferred]"),
    ],
)
def test_unknown_keys_name_the_key_and_line(kdir, text, line, key):
    with pytest.raises(SpecError) as exc:
        _spec(kdir, text)
    (loc, message), *_ = exc.value.problems
    assert loc.file == "kernel.toml" and loc.line == line, exc.value.problems
    assert "unknown key" in message and key in message
    assert f"kernel.toml:{line}" in str(exc.value)
    assert isinstance(exc.value, UsageError)  # exit 2


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[kernel]\nfeatures = \"batch query\"\n", "features"),
        ("[kernel]\nkernelspec = true\n", "kernelspec"),
        ("[kernel]\nrole = \"inference\"\n", "role"),
        ("[services]\nweb = { port = 1, ports = [2] }\n", "either 'port' or 'ports'"),
        ("[services]\nweb = { protocol = \"http\" }\n", "needs a 'port'"),
        ("[services]\nweb = { port = 8000, def = \"nope.json\" }\n", "does not exist"),
        ("[services]\nnotthere = { library = true }\n", "no library service-def"),
        ("[policy]\nfile = \"missing.yml\"\n", "does not exist"),
        ("[policy]\nfile = \"policy.yml\"\ndefault = true\n", "not both"),
        ("[kernel]\nrole = \"SYSTEM\"\n[inference]\nendpoint-ports = [\"m\"]\nmodel-path = \"/m\"\nmodel-format = \"x\"\n", "INFERENCE"),
        ('[kernel]\nruntime-type = "python"\n[labels]\n"ai.backend.runtime-type" = "app"\n', "already set by kernel.toml:2"),
        ("[kernel\n", "TOML syntax error"),
    ],
)
def test_invalid_specs(kdir, text, fragment):
    with pytest.raises(SpecError) as exc:
        _spec(kdir, text)
    assert fragment in str(exc.value)
    assert all(loc.line is not None for loc, _ in exc.value.problems), exc.value.problems


def test_inference_section_sets_role(kdir):
    spec = _spec(kdir, '[inference]\nendpoint-ports = ["model"]\nmodel-path = "/models"\nmodel-format = "onnx"\n'
                       '[services]\nmodel = { port = 8000, protocol = "preopen" }\n')
    assert spec.labels["ai.backend.role"] == "INFERENCE"
    assert spec.labels["ai.backend.endpoint-ports"] == "model"
    assert spec.label_locations["ai.backend.model-format"].line == 4


def test_policy_choices(kdir):
    assert _spec(kdir, "[policy]\ndefault = true\n").policy.kind == "default"
    assert _spec(kdir, "[policy]\ndefault = false\n").policy.kind == "none"


def test_key_lines_skip_multiline_values():
    text = 'a = """\n[not.a.table]\nb = 1\n"""\narr = [\n  "x = 1",\n]\n[t]\n"q.k" = 2\nd.e = 3\n'
    lines = key_lines(text)
    assert lines == {"a": 1, "arr": 5, "t": 8, "t.q.k": 9, "t.d.e": 10}


def test_unreadable_spec_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read kernel spec"):
        load_spec(tmp_path / "nope.toml")


def test_committed_schema_is_in_sync():
    assert SCHEMA_PATH.read_text() == schema_text(), "run: python -m imagekit.kernelspec"


def test_schema_accepts_the_example_and_rejects_unknown_keys(kdir):
    import tomllib

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(tomllib.loads(FULL)))
    assert list(validator.iter_errors({"kernel": {"runtime-typo": "x"}}))


def test_init_scaffold_spec_loads(tmp_path):
    from imagekit.commands.init import scaffold

    scaffold(tmp_path, "python", ["jupyterlab"])
    spec = load_spec(tmp_path / "kernel.toml")
    assert spec.labels["ai.backend.service-ports"] == "hello:http:8080,jupyterlab:http:8090"
    assert spec.policy.kind == "file"
    assert parse_spec((tmp_path / "kernel.toml").read_text(), tmp_path / "kernel.toml").labels == spec.labels
