"""Every reference image, started and driven by the stock Backend.AI agent's own code.

Each test starts one kernel with the agent's ``DockerKernelCreationContext`` (its mounts, its
``entrypoint.sh``, ``su-exec``, ``libbaihook.so``, seccomp profile, ``StopSignal``) on our krunner
volume, drives it through the agent's ``DockerKernel``/``DockerCodeRunner`` and destroys it
(``stock_agent_driver.py``). Nothing of the agent is re-implemented here.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from imagekit.smoke.samples import EXPECTED, SAMPLES

pytestmark = [pytest.mark.docker, pytest.mark.agent, pytest.mark.timeout(1500)]

#: image → (runtime sample key, services declared by its labels)
IMAGES = {
    "python": ("python", ["jupyterlab", "tensorboard"]),
    "python-minimal": ("python", []),
    "app-shell": (None, ["static-files"]),
    "cpp": ("cpp", []),
    "nodejs": ("nodejs", []),
    "r": ("r", []),
    "inference": ("python", []),
}
UPLOAD = "agent-upload.txt"
REPO = Path(__file__).resolve().parents[2]


def _steps(sample_key: str | None, services: list[str]) -> list[dict]:
    steps: list[dict] = [
        {"op": "status"},
        {"op": "ping"},
        {"op": "service_apps"},
        {"op": "upload", "path": UPLOAD, "data": "uploaded through the agent\n"},
        {"op": "list_files", "path": "."},
        {"op": "download", "path": UPLOAD},
        {"op": "download_single", "path": UPLOAD},
    ]
    for name in services:
        steps += [{"op": "start_service", "name": name, "timeout": 120},
                  {"op": "http_get", "service": name, "timeout": 60},
                  {"op": "shutdown_service", "name": name}]
    steps += [{"op": "start_service", "name": "ttyd"}, {"op": "http_get", "service": "ttyd"},
              {"op": "start_service", "name": "sshd"}, {"op": "tcp_banner", "service": "sshd"}]
    if sample_key is None:
        return steps
    sample = SAMPLES[sample_key]
    steps += [
        {"op": "query", "code": sample.query, "tag": "query"},
        {"op": "query", "code": sample.fail, "tag": "fail"},
        {"op": "query", "code": sample.slow, "interrupt_after": 1.5, "timeout": 60, "tag": "interrupt"},
        {"op": "upload", "path": sample.file, "data": sample.program},
        {"op": "batch", "clean": "", "build": "*", "exec": "*", "timeout": 300, "tag": "batch"},
    ]
    if sample_key == "python":
        steps += [
            {"op": "query", "code": "x = 41", "tag": "state-set"},
            {"op": "query", "code": "print(x + 1)", "tag": "state-get"},
            {"op": "query", "code": "1 / 0", "tag": "error"},
            {"op": "query", "code": sample.rich, "tag": "media"},
            {"op": "query", "code": sample.input_prompt, "inputs": ["smoke"], "tag": "input"},
            {"op": "complete", "code": sample.completion[0], "opts": {"line": sample.completion[0], "row": 0,
                                                                       "col": len(sample.completion[0])},
             "tag": "complete"},
        ]
    return steps


def _explain(result: dict) -> str:
    failed = [s for s in result.get("steps", []) if not s.get("ok")]
    return (f"error: {result.get('error')}\nfailed steps: {json.dumps(failed, indent=1)[-4000:]}\n"
            f"container log:\n{(result.get('container_logs') or '')[-4000:]}")


def _tagged(result: dict, tag: str) -> dict:
    steps = result["steps"]
    sent = result["_sent"]
    (index,) = [i for i, s in enumerate(sent) if s.get("tag") == tag]
    return steps[index]


@pytest.mark.parametrize("name", list(IMAGES))
def test_reference_image_under_stock_agent(stock_agent, reference_image, name):
    sample_key, services = IMAGES[name]
    steps = _steps(sample_key, services)
    result = stock_agent.run(reference_image(name), steps)
    result["_sent"] = steps
    assert result["ok"], _explain(result)

    # the agent's container layout, with our runner inside it
    container, kernel = result["container"], result["kernel"]
    mounts = {m["target"]: m for m in container["mounts"]}
    assert mounts["/opt/backend.ai"]["source"] is not None and mounts["/opt/backend.ai"]["read_only"]
    assert kernel["krunner"]["volume"] == stock_agent.volume
    assert "/opt/backend.ai/lib/python3.13/site-packages/ai/backend/kernel" in mounts  # the agent's own runner …
    assert container["entrypoint"] == ["/opt/kernel/entrypoint.sh"]
    assert container["env"]["LD_PRELOAD"] == "/opt/kernel/libbaihook.so"
    assert "INFO krunner" in result["container_logs"]  # … and ours is what runs
    assert not {"2002/tcp", "2003/tcp"} & set(container["port_bindings"])  # PTY mode is never published

    by_op = {}
    for sent, got in zip(steps, result["steps"]):
        by_op.setdefault(sent["op"], []).append(got)
    assert by_op["status"][0]["result"] is not None
    apps = {app["name"] for app in by_op["service_apps"][0]["result"]["data"]}
    assert set(services) <= apps  # the service-def apps, as upstream lists them (not the intrinsic ones)
    assert any(f.get("filename") == UPLOAD for f in by_op["list_files"][0]["files"])
    assert by_op["download"][0]["members"][UPLOAD]["text"] == "uploaded through the agent\n"
    assert by_op["download_single"][0]["text"] == "uploaded through the agent\n"
    for started in by_op["start_service"]:
        assert started["result"]["status"] in ("started", "running"), started
    for probe in by_op["http_get"]:
        assert 200 <= probe["status"] < 400, probe  # JupyterLab answers / with a redirect to /lab
    assert by_op["tcp_banner"][0]["banner"].startswith("SSH-2.0-dropbear"), by_op["tcp_banner"]
    if sample_key is None:
        return

    query = _tagged(result, "query")
    assert (query["status"], query["exitCode"]) == ("finished", 0) and EXPECTED in query["stdout"], query
    fail = _tagged(result, "fail")
    assert fail["status"] == "finished" and fail["exitCode"] not in (0, None), fail
    interrupted = _tagged(result, "interrupt")
    assert interrupted["interrupted"] and interrupted["status"] == "finished" and interrupted["duration"] < 25
    batch = _tagged(result, "batch")
    assert [c["status"] for c in batch["calls"]][-1] == "finished" and batch["exitCode"] == 0, batch
    assert EXPECTED in batch["stdout"]
    if sample_key != "python":
        return
    assert _tagged(result, "state-get")["stdout"] == "42\n"
    error = _tagged(result, "error")
    assert error["exitCode"] != 0 and "ZeroDivisionError" in error["stderr"]
    media = _tagged(result, "media")
    assert any(item[0] == "media" or item[0] == "html" for item in media["console"]), media["console"]
    answered = _tagged(result, "input")
    assert [c["status"] for c in answered["calls"]][0] == "waiting-input"
    assert "got smoke" in answered["stdout"]
    completion = _tagged(result, "complete")
    assert "os" in json.dumps(completion), completion


def _batch_program(lines: int) -> str:
    return "import sys\n" + "".join(
        f"print('out {i}')\nprint('err {i}', file=sys.stderr)\n" for i in range(lines))


@pytest.mark.parametrize("name", ["python", "cpp"])
def test_batch_loses_nothing_with_the_agents_client(stock_agent, reference_image, name):
    """clean/build/exec sent together, the client detaching at every end-of-step record: 50 of 50
    runs deliver every record and the final ``finished`` (half of them with a slow client)."""
    runs = 50
    if name == "python":
        files = [{"op": "upload", "path": "main.py", "data": _batch_program(20)}]
        batch = {"clean": "echo cleaning", "build": "echo building >&2", "exec": "python3 main.py"}
    else:
        source = ("#include <iostream>\nint main() { for (int i = 0; i < 20; ++i) { std::cout << \"out \" << i"
                  " << std::endl; std::cerr << \"err \" << i << std::endl; } return 0; }\n")
        files = [{"op": "upload", "path": "main.cpp", "data": source}]
        batch = {"clean": "echo cleaning", "build": "g++ -o main main.cpp && echo building >&2", "exec": "./main"}
    steps = files + [{"op": "batch", **batch, "continue_delay": 0.3 if i % 2 else 0, "timeout": 120}
                     for i in range(runs)]
    result = stock_agent.run(reference_image(name), steps)
    assert result["ok"], _explain(result)
    want_out = "cleaning\n" + "".join(f"out {i}\n" for i in range(20))
    want_err = "building\n" + "".join(f"err {i}\n" for i in range(20))
    complete = 0
    for run in result["steps"][len(files):]:
        if (run["status"], run["exitCode"], run["stdout"], run["stderr"]) == ("finished", 0, want_out, want_err):
            complete += 1
    assert complete == runs, [(r["status"], r["stdout"][-80:], r["stderr"][-80:]) for r in result["steps"][1:4]]


def test_model_service_on_inference_image(stock_agent, reference_image):
    """The agent's start_model_service with the model of images/inference/model/model-definition.yaml."""
    import yaml

    definition = yaml.safe_load((REPO / "images" / "inference" / "model" / "model-definition.yaml").read_text())
    (model,) = definition["models"]
    port = model["service"]["port"]
    steps = [{"op": "start_model_service", "model": model, "timeout": 120},
             {"op": "http_get", "port": port, "path": "/health", "timeout": 60}]
    # the agent publishes a model's port itself; the driver is told to, as a preopen port
    result = stock_agent.run(reference_image("inference"), steps, "--preopen-port", str(port))
    assert result["ok"], _explain(result)
    started, health = result["steps"]
    assert started["result"]["status"] in ("started", "running"), started
    assert health["status"] == 200, health


def test_file_roundtrip_binary(stock_agent, reference_image):
    """Binary upload/download through the agent (its tar-based file API) on the smallest image."""
    blob = bytes(range(256)) * 64
    steps = [{"op": "upload", "path": "blob.bin", "data_b64": base64.b64encode(blob).decode()},
             {"op": "download_single", "path": "blob.bin"}]
    result = stock_agent.run(reference_image("python-minimal"), steps)
    assert result["ok"], _explain(result)
    assert base64.b64decode(result["steps"][1]["b64"]) == blob
