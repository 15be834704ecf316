"""``bai-imagekit test`` / ``run`` / ``app`` / ``stop`` against real images on the local engine.

A good image passes every check; deliberately broken images fail exactly the
checks that should catch them, with messages that say why; containers and
scratch dirs are gone afterwards, also after a failing run and after SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest

from imagekit.harness.container import SCRATCH_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "imagekit.cli"]
BROKEN = ("bad-label", "dead-service", "no-runtime", "no-tmp")
GOOD = "bai-ref/python:latest"


@pytest.fixture(scope="module")
def images(reference_image):
    from imagekit.localenv.images import ensure_image
    from imagekit.localenv.test_images import ensure_test_images

    assert reference_image("python") == GOOD
    ensure_test_images(["python"])
    for name in BROKEN:
        ensure_image(REPO / "tests" / "images" / "smoke" / name, f"bai-test/smoke-{name}:latest", "bai-test/python:latest")
    return {name: f"bai-test/smoke-{name}:latest" for name in BROKEN}


def _harness_containers() -> list[str]:
    client = docker.from_env()
    return [c.name for c in client.containers.list(all=True, filters={"label": "ai.backend.imagekit.harness=1"})
            if c.name.startswith(("bai-imagekit-test.", "bai-imagekit-run."))]


def _scratch_dirs() -> set[str]:
    return set(os.listdir(SCRATCH_ROOT)) if SCRATCH_ROOT.is_dir() else set()


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_good_image_passes_every_check_with_junit_report(images, tmp_path):
    volumes_before = {v.name for v in docker.from_env().volumes.list()}
    report = tmp_path / "smoke.xml"
    test_file = tmp_path / "image-test.toml"
    test_file.write_text(
        '[[commands]]\nname = "jupyterlab importable"\nrun = ["/opt/py/bin/python", "-c", "import jupyterlab; print(\'ok\')"]\n'
        'stdout = "^ok$"\n\n[[commands]]\nname = "runs as the kernel user"\nrun = "id -u"\nstdout = "^1000$"\n\n'
        '[[files]]\npath = "/etc/backend.ai/service-defs/jupyterlab.json"\ncontains = "jupyterlab"\n\n'
        '[[files]]\npath = "/no/such/file"\nexists = false\n'
    )
    out = _cli("test", GOOD, "--format", "junit", "--report", str(report), "--test-file", str(test_file))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed" in out.stdout and "jupyterlab" in out.stdout and "http://127.0.0.1:" in out.stdout
    assert "PASS" in out.stderr  # live progress, one line per check
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == GOOD and suite.get("failures") == "0" and suite.get("errors") == "0"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    for check in ("labels", "start", "query.output", "query.interrupt", "input", "batch", "service.jupyterlab",
                  "service.tensorboard", "intrinsic.sshd", "intrinsic.webterm", "env.uid-match", "env.terminfo",
                  "author.command.1", "author.command.2",
                  "author.file.1", "author.file.2"):
        assert check in cases, sorted(cases)
        assert cases[check].find("failure") is None and cases[check].find("skipped") is None, check
    assert all(float(c.get("time")) >= 0 for c in cases.values())
    assert _harness_containers() == []
    assert {v.name for v in docker.from_env().volumes.list()} == volumes_before


def test_broken_images_fail_the_right_checks(images):
    scratch_before = _scratch_dirs()
    out = _cli("test", "--format", "json", "-j", "2", *images.values())
    assert out.returncode == 1, out.stderr
    body = json.loads(out.stdout)
    assert body["passed"] is False
    by_image = {i["image"]: {r["id"]: r for r in i["results"]} for i in body["images"]}

    def failed(image: str) -> dict[str, str]:
        return {k: r["message"] for k, r in by_image[images[image]].items() if r["outcome"] == "failed"}

    bad_label = failed("bad-label")
    assert set(bad_label) == {"labels"}, bad_label
    assert "BAI005" in bad_label["labels"] and "'lots'" in bad_label["labels"]
    details = by_image[images["bad-label"]]["labels"]["details"]
    assert "BAI012" in details and "warp-drive" in details

    dead = failed("dead-service")
    assert set(dead) == {"service.sleepy"}, dead
    assert "port 8099 not open after 3 s" in dead["service.sleepy"]

    no_runtime = failed("no-runtime")
    assert {"labels", "query.output", "batch"} <= set(no_runtime), no_runtime
    assert "/usr/bin/python9" in by_image[images["no-runtime"]]["labels"]["details"]
    assert "exit 127" in no_runtime["query.output"]

    no_tmp = failed("no-tmp")
    assert "env.entrypoint" in no_tmp and "/tmp" in no_tmp["env.entrypoint"], no_tmp
    assert _harness_containers() == [] and _scratch_dirs() == scratch_before


def test_missing_image_and_bad_test_file_are_exit_2(images, tmp_path):
    out = _cli("test", "bai-test/does-not-exist:latest")
    assert out.returncode == 2 and "not found" in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[commands]]\nname = "x"\nrun = []\nexit_status = 1\n')
    out = _cli("test", GOOD, "--test-file", str(bad))
    assert out.returncode == 2 and "bad.toml" in out.stderr and "run" in out.stderr


def test_sigint_removes_the_container(images):
    scratch_before = _scratch_dirs()
    proc = subprocess.Popen([*CLI, "test", GOOD], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _harness_containers():
            assert proc.poll() is None and time.monotonic() < deadline, "no container appeared"
            time.sleep(0.2)
        time.sleep(2.0)  # well inside the checks
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert _harness_containers() == [] and _scratch_dirs() == scratch_before


def test_run_app_stop(images):
    out = _cli("run", GOOD, "--format", "json")
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    name = facts["container"]
    try:
        assert set(facts["services"]) == {"jupyterlab", "tensorboard"}
        client = docker.from_env()
        container = client.containers.get(name)
        env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
        assert env["BACKENDAI_SERVICE_PORTS"] == "jupyterlab:http:8090,tensorboard:http:6006"
        assert env["BACKENDAI_CLUSTER_ROLE"] == "main" and env["LOCAL_USER_ID"] == "1000"
        assert container.attrs["HostConfig"]["Memory"] >= 1 << 30
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for v in bindings.values() for b in v)
        assert (SCRATCH_ROOT / facts["kernel_id"] / "config" / "resource.txt").read_text().startswith("cpu=")
        app = _cli("app", name, "tensorboard", "--format", "json")
        assert app.returncode == 0, app.stderr
        result = json.loads(app.stdout)
        assert result["status"] == "started" and result["url"] == facts["services"]["tensorboard"]["url"]
        assert _cli("app", name, "nosuch").returncode == 2
    finally:
        stop = _cli("stop", name)
    assert stop.returncode == 0, stop.stderr
    assert name not in _harness_containers()
    assert not (SCRATCH_ROOT / facts["kernel_id"]).exists()
