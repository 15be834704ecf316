"""Model definitions: upstream's defaults and spellings, the manager's merge with runtime-variant
defaults, the agent's port checks, the BAI6xx rules with file:line, krunner's health semantics,
and images/inference checked by the stock agent's own ModelDefinition."""

from __future__ import annotations

import asyncio
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from imagekit.rules.model_definition import ImageContext, check_folder
from imagekit.targets import detect_kind, open_targets
from krunner.services import model_definition as md
from krunner.services.inference import ModelServices

REPO = Path(__file__).resolve().parents[2]
AGENT_PYTHON = REPO / ".cache" / "agent-venv" / "bin" / "python"
INFERENCE = REPO / "images" / "inference"


def folder(tmp_path: Path, text: str, config: str | None = None) -> Path:
    (tmp_path / "model-definition.yaml").write_text(textwrap.dedent(text))
    if config is not None:
        (tmp_path / "deployment-config.yaml").write_text(textwrap.dedent(config))
    return tmp_path


def rules(result) -> list[tuple[str, int | None]]:
    return [(f.rule, f.location.line if f.location else None) for f in result.findings]


# ------------------------------------------------------------------------------ format and defaults


def test_upstream_defaults():
    hc = md.HealthCheck()
    assert (hc.enable, hc.path, hc.interval, hc.max_retries, hc.max_wait_time, hc.expected_status_code, hc.initial_delay) == (
        False, "/health", 10.0, 10, 15.0, 200, 60.0)
    svc = md.ModelService(port=8000)
    assert svc.shell == "/bin/bash" and svc.start_command is None and svc.health_check is None


def test_command_spellings_and_lists():
    assert md.ModelService.model_validate({"port": 9, "start_command": ["a b", "c"]}).start_command == "'a b' c"
    assert md.ModelService.model_validate({"port": 9, "start-command": "x"}).start_command == "x"
    assert md.ModelService.model_validate({"port": 9, "command": "y", "start_command": "x"}).start_command == "y"
    assert md.ModelService.model_validate({"port": 9, "shell": None}).shell is None
    assert md.ModelService.model_validate({"port": 9, "health-check": {"max-retries": 3}}).health_check.max_retries == 3


def test_port_must_be_greater_than_one_and_status_above_100():
    with pytest.raises(Exception):
        md.ModelService(port=1)
    with pytest.raises(Exception):
        md.HealthCheck(expected_status_code=100)
    with pytest.raises(Exception):
        md.HealthCheck(initial_delay=-1)


def test_metadata_is_typed_with_aliases():
    meta = md.ModelMetadata.model_validate({"created_at": "2026-01-01", "modified-at": "x", "framework": ["vllm"], "version": 3})
    assert meta.created == "2026-01-01" and meta.last_modified == "x" and meta.version == 3


def test_variant_table_covers_upstream_variants():
    assert set(md.RUNTIME_VARIANTS) == {"vllm", "nim", "cmd", "huggingface-tgi", "sglang", "modular-max", "llama-cpp", "custom"}
    assert [n for n, v in md.RUNTIME_VARIANTS.items() if v.reads_vfolder_config_files] == ["custom"]
    assert md.RUNTIME_VARIANTS["huggingface-tgi"].service["port"] == 3000
    assert md.RUNTIME_VARIANTS["sglang"].service["port"] == 9001
    assert md.RUNTIME_VARIANTS["nim"].service["health_check"]["path"] == "/v1/health/ready"
    assert "start_command" not in md.RUNTIME_VARIANTS["cmd"].service


# ------------------------------------------------------------------------------ the manager's merge


def resolve(variant: str, data: dict | None) -> md.ModelDefinition:
    return md.ModelDefinition.model_validate(md.resolve_layers(md.variant_layers(variant, data)))


def test_custom_variant_merges_the_file_over_its_defaults():
    d = resolve("custom", {"models": [{"name": "m", "service": {"start_command": "serve {model_path}", "health_check": {"path": "/ok"}}}]})
    (m,) = d.models
    assert (m.name, m.model_path, m.service.port, m.service.start_command) == ("m", "/models", 8080, "serve /models")
    # a non-empty health_check block in a file opts in; the rest comes from the variant
    assert m.service.health_check.enable is True and m.service.health_check.path == "/ok"
    assert m.service.health_check.initial_delay == 1800.0


def test_empty_health_check_block_opts_out_and_null_shell_sticks():
    d = resolve("custom", {"models": [{"name": "m", "service": {"port": 9000, "health_check": {}, "shell": None}}]})
    assert d.models[0].service.health_check.enable is False and d.models[0].service.shell is None


def test_other_variants_ignore_the_folder():
    d = resolve("vllm", {"models": [{"name": "m", "service": {"port": 1234}}]})
    (m,) = d.models
    assert (m.name, m.service.port, m.service.start_command) == ("vllm-model", 8000, "vllm serve '/models'")
    assert m.service.health_check.enable is True
    llama = resolve("llama-cpp", None).models[0].service.health_check
    assert llama.enable is False and llama.max_retries == 30


# ------------------------------------------------------------------------------ the agent's port check


def test_port_problems_like_the_agent():
    models = [md.ModelConfig(name=n, model_path="/m", service=md.ModelService(port=p))
              for n, p in (("a", 2000), ("b", 2200), ("c", 8000), ("d", 8000), ("e", 9000), ("f", 7681))]
    problems = md.port_problems(models, {"api": (9000,)})
    assert [(p.model_index, p.kind) for p in problems] == [(0, "reserved"), (1, "conflict"), (3, "conflict"), (4, "conflict"), (5, "conflict")]
    assert "sshd" in problems[1].message and "c-8000" in problems[2].message and "api" in problems[3].message


# ------------------------------------------------------------------------------ rules with file:line


def test_port_conflict_with_image_label_points_at_the_port_line(tmp_path):
    f = folder(tmp_path, """\
        models:
          - name: m
            model_path: /models
            service:
              start_command: serve
              port: 8000
        """)
    image = ImageContext("img", {"ai.backend.service-ports": "inference:preopen:8000"})
    assert rules(check_folder(f, image)) == [("BAI606", 6)]
    assert rules(check_folder(f, ImageContext("img", {"ai.backend.service-ports": "web:http:8080"}))) == []


def test_reserved_port_unknown_keys_and_bad_health(tmp_path):
    f = folder(tmp_path, """\
        models:
          - name: m
            model_path: /models
            colour: blue
            service:
              start_command: serve
              port: 2000
              helth_check: {}
              health_check:
                path: health
                expected_status_code: 0
        """)
    found = rules(check_folder(f))
    assert ("BAI603", 4) in found and ("BAI603", 8) in found
    assert ("BAI609", 10) in found
    assert ("BAI608", 11) in found  # expected_status_code must be > 100: the whole definition is rejected


def test_missing_start_command_depends_on_the_image_cmd(tmp_path):
    f = folder(tmp_path, "models:\n  - name: m\n    model_path: /models\n    service:\n      port: 8000\n")
    assert [(r.rule, r.severity.value) for r in check_folder(f).findings] == [("BAI607", "info")]
    assert rules(check_folder(f, ImageContext("img", {}, cmd=None))) == [("BAI607", 4)]
    assert rules(check_folder(f, ImageContext("img", {}, cmd=["serve"]))) == []


def test_type_errors_and_missing_fields(tmp_path):
    f = folder(tmp_path, "models:\n  - name: m\n    model_path: /models\n    service:\n      start_command: x\n      port: eighty\n")
    assert rules(check_folder(f)) == [("BAI602", 6)]
    g = folder(tmp_path, "models: {}\n")
    assert rules(check_folder(g)) == [("BAI602", 1)]


def test_invalid_yaml_and_empty_models(tmp_path):
    f = folder(tmp_path, "models:\n  - name: [\n")
    assert [r for r, _ in rules(check_folder(f))] == ["BAI601"]
    g = folder(tmp_path, "models: []\n")
    assert rules(check_folder(g)) == [("BAI604", 1), ("BAI607", None)] or [r for r, _ in rules(check_folder(g))] == ["BAI604", "BAI607"]


def test_deployment_config(tmp_path):
    f = folder(tmp_path, "models:\n  - name: m\n    model_path: /models\n    service: {start_command: x, port: 8000}\n",
               """\
               image: my/image:1
               environ:
                 THREADS: 4
               vllm:
                 resource_opts: {shmem: 1g}
               resource_slot: {cpu: 1}
               """)
    assert sorted(rules(check_folder(f))) == [("BAI603", 6), ("BAI611", 3)]


def test_model_dir_target_kind_and_pairing_with_a_kernel_dir():
    model = INFERENCE / "model"
    assert detect_kind(str(model)) == "model-dir"
    with open_targets([str(INFERENCE), str(model)]) as loaded:
        assert [t.kind for t in loaded] == ["kernel-dir", "model-dir"]
        assert loaded[1].findings() == []


# ------------------------------------------------------------------------------ krunner's health semantics


class _Recorder:
    def __init__(self):
        self.sent = []

    def __call__(self, record, payload):
        self.sent.append(json.loads(payload))


def test_health_loop_probes_at_once_and_uses_the_grace_period(monkeypatch):
    from krunner.services import inference

    calls = []

    async def fails(port, path, timeout):
        calls.append(path)
        raise OSError("refused")

    monkeypatch.setattr(inference, "http_status", fails)
    rec = _Recorder()
    engine = ModelServices(supervisor=None, launcher=None, register=lambda *_: None, send=rec)
    hc = md.HealthCheck(enable=True, interval=0.01, max_retries=2, initial_delay=0.3)

    async def run():
        task = asyncio.create_task(engine._health_loop("m", 8000, hc))
        await asyncio.sleep(0.05)
        early = list(rec.sent)
        await asyncio.sleep(0.5)
        task.cancel()
        return early

    early = asyncio.run(run())
    assert calls and calls[0] == "/health"  # probed immediately, default path
    assert early == []  # still within the grace period
    assert rec.sent == [{"model_name": "m", "is_healthy": False}]


def test_no_health_check_unless_enabled():
    rec = _Recorder()
    engine = ModelServices(supervisor=None, launcher=None, register=lambda *_: None, send=rec)

    async def run():
        engine._start_health("m", md.ModelService(port=8000, health_check=md.HealthCheck()))
        return dict(engine.health_tasks)

    assert asyncio.run(run()) == {}
    assert rec.sent == [{"model_name": "m", "is_healthy": True}]


# ------------------------------------------------------------------------------ images/inference vs. the stock agent


STOCK_CHECK = r"""
import asyncio, json, sys, uuid, yaml
from pathlib import PurePosixPath
from ai.backend.agent.agent import AbstractAgent
from ai.backend.common.config import ModelDefinition, ModelDefinitionDraft
from ai.backend.common.service_ports import parse_service_ports
from ai.backend.common.types import MountPermission, VFolderID, VFolderMount, VFolderUsageMode
labels = json.loads(sys.argv[2])
raw = yaml.safe_load(open(sys.argv[1]))
# the manager's side: the folder's file resolved as a revision (custom variant, no preset)
definition = ModelDefinitionDraft.from_file_payload(raw).to_resolved()
# the agent's side: create_kernel's service ports (intrinsic + the image's labels), then the agent's
# own _load_model_definition with the definition inlined as the scheduler does (it uses no agent state)
ports = [{"name": n, "protocol": "preopen", "container_ports": (p,), "host_ports": (None,)}
         for n, p in (("sshd", 2200), ("ttyd", 7681))]
ports += list(parse_service_ports(labels.get("ai.backend.service-ports", ""), labels.get("ai.backend.endpoint-ports", "")))
folder = VFolderMount(name="model", vfid=VFolderID(None, uuid.uuid4()), vfsubpath=PurePosixPath("."),
                      host_path=PurePosixPath("/tmp/model"), kernel_path=PurePosixPath("/models"),
                      mount_perm=MountPermission.READ_ONLY, usage_mode=VFolderUsageMode.MODEL)
environ = {}
config = {"internal_data": {"model_definition": definition.model_dump(mode="json")}}
problems = []
try:
    loaded = asyncio.run(AbstractAgent._load_model_definition(None, [folder], environ, ports, config))
except Exception as exc:
    problems.append(f"{type(exc).__name__}: {exc}")
    loaded = definition
print(json.dumps({"models": loaded.model_dump(mode="json")["models"], "problems": problems, "environ": environ}))
"""


def _stock(labels: dict[str, str]) -> dict:
    if not AGENT_PYTHON.is_file():
        pytest.skip(f"the stock agent venv is missing ({AGENT_PYTHON}); create it with python -m imagekit.localenv agent-venv")
    out = subprocess.run([str(AGENT_PYTHON), "-c", STOCK_CHECK, str(INFERENCE / "model" / "model-definition.yaml"),
                          json.dumps(labels)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _inference_labels() -> dict[str, str]:
    from imagekit.kernelspec import load_spec

    return dict(load_spec(INFERENCE / "kernel.toml", "kernel.toml").labels)


def test_stock_agent_accepts_images_inference():
    """The stock agent's own _load_model_definition accepts the model of images/inference with its labels."""
    result = _stock(_inference_labels())
    assert result["problems"] == []
    assert result["environ"] == {"BACKEND_MODEL_NAME": "demo-model", "BACKEND_MODEL_PATH": "/models"}
    (model,) = result["models"]
    ours = resolve("custom", __import__("yaml").safe_load((INFERENCE / "model" / "model-definition.yaml").read_text()))
    # the stock model and ours agree on what the agent sends (our merge adds only the variant's initial_delay default)
    assert model["service"]["start_command"] == ours.models[0].service.start_command == "python3 /opt/model-server/serve.py 8000 /models"
    assert model["service"]["port"] == 8000 and model["service"]["health_check"]["enable"] is True


def test_stock_agent_would_refuse_the_old_labels():
    """The labels images/inference had before (inference:preopen:8000): PortConflictError, and our rule agrees."""
    old = {"ai.backend.service-ports": "inference:preopen:8000", "ai.backend.endpoint-ports": "inference"}
    (problem,) = _stock(old)["problems"]
    assert problem.startswith("PortConflictError") and "8000" in problem and "inference" in problem
    assert [f.rule for f in check_folder(INFERENCE / "model", ImageContext("old", old)).findings] == ["BAI606"]
    assert check_folder(INFERENCE / "model", ImageContext("new", _inference_labels(), cmd=["python3"])).findings == []
