"""Service ports in a real kernel container: the same lifecycle the agent drives."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests import scenarios
from tests.kernels import DockerKernel

pytestmark = pytest.mark.docker

PORTS = {"web": 8080, "slow": 8081, "scripted": 8082}


def test_services_lifecycle_in_container(localenv):
    defs = Path(tempfile.mkdtemp(prefix="bai-service-defs-"))
    scenarios.write_service_defs(defs)
    defs.chmod(0o755)  # root-owned and world-readable, as in an image
    kernel = DockerKernel(
        "bai-test/python:latest",
        "python",
        "/usr/bin/python3",
        extra_ports=list(PORTS.values()),
        extra_mounts=[(defs, "/etc/backend.ai/service-defs")],
    )
    try:
        def is_open(port: int) -> bool:
            probe = f"import socket; s = socket.socket(); s.settimeout(0.5); exit(s.connect_ex(('127.0.0.1', {port})))"
            code, _ = kernel.exec_run(["python3", "-c", probe])
            return code == 0

        scenarios.services_lifecycle(kernel.client(), PORTS, kernel.kc.host_port, is_open)
        logs = kernel.kc.work_dir / ".logs" / "services"
        assert (logs / "dies.log").read_text().strip() == "about to fail"
        assert "broken" in kernel.logs() and "unknown key" in kernel.logs()
    finally:
        kernel.stop()


def test_model_service_with_health_check(localenv):
    kernel = DockerKernel("bai-test/python:latest", "python", "/usr/bin/python3", extra_ports=[8090])
    try:
        c = kernel.client()
        config = {
            "name": "echo-model",
            "model_path": "/home/work",
            "service": {
                "start_command": "exec python3 -m http.server 8090",
                "shell": "/bin/sh",
                "port": 8090,
                "health_check": {"enable": True, "path": "/nonexistent", "interval": 0.3,
                                 "max_retries": 2, "max_wait_time": 1.0, "expected_status_code": 404},
            },
        }
        res = c.start_model_service(config)
        assert res.status == "started", res.error
        _, payload = c.recv({"model-service-status"}, timeout=15)
        assert scenarios.json.loads(payload) == {"model_name": "echo-model", "is_healthy": True}
        assert c.start_model_service(config).status == "running"
        res = c.start_model_service({"name": "m", "model_path": "/nonexistent", "service": {"start_command": "true", "port": 9000}})
        assert res.status == "failed" and "model directory does not exist" in res.error
        res = c.start_model_service({"name": "m", "model_path": "/home/work"})
        assert res.status == "failed" and "service info not provided" in res.error
    finally:
        kernel.stop()
