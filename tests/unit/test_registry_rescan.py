"""The rescan's verdict for one platform's labels, tag and repository (imagekit.registry.rescan)."""

from __future__ import annotations

import pytest

from imagekit.registry.rescan import (
    Verdict,
    accelerators,
    alias_arch,
    decide,
    label_skip_reason,
    oci_manifest_arch,
    tag_skip_reason,
)

KERNEL = {"ai.backend.kernelspec": "1", "ai.backend.runtime-type": "python", "ai.backend.features": "batch query uid-match"}


def test_kernel_plain_and_skipped():
    assert decide(KERNEL, tag="3.12-py312", repository="p/python") == (Verdict.KERNEL, "", None)
    verdict, _, accels = decide({}, tag="latest", repository="p/x")
    assert (verdict, accels) == (Verdict.PLAIN, "*")
    assert decide({**KERNEL, "ai.backend.features": "batch  query"}, tag="1", repository="p/x")[0] is Verdict.SKIPPED


@pytest.mark.parametrize(("labels", "why"), [
    ({"ai.backend.kernelspec": "2"}, "only 1"),
    ({"ai.backend.kernelspec": "one"}, "not an integer"),
    ({"ai.backend.features": ""}, "blank item"),
    ({"ai.backend.features": " uid-match"}, "blank item"),
    ({"ai.backend.runtime-type": ""}, "runtime-type is blank"),
    ({"ai.backend.base-distro": ""}, "base-distro is blank"),
    ({"ai.backend.role": "compute"}, "not one of"),
    ({"ai.backend.service-ports": "web:HTTP:8080"}, "unsupported protocol 'HTTP'"),
    ({"ai.backend.service-ports": "a:http:8080,b:tcp:8080"}, "used twice"),
    ({"ai.backend.service-ports": "a:http:80"}, "not above 1024"),
    ({"ai.backend.service-ports": "a:http:65535"}, "not below 65535"),
    ({"ai.backend.service-ports": "a:http:2200"}, "reserved"),
    ({"ai.backend.role": "INFERENCE", "ai.backend.model-path": "/m", "ai.backend.model-format": "x"},
     "without ai.backend.endpoint-ports"),
    ({"ai.backend.role": "INFERENCE", "ai.backend.endpoint-ports": "api", "ai.backend.model-path": "/m",
      "ai.backend.model-format": "x", "ai.backend.service-ports": "api:http:8000"}, "not a preopen"),
    ({"ai.backend.role": "INFERENCE", "ai.backend.endpoint-ports": "api", "ai.backend.model-path": "/m",
      "ai.backend.model-format": "x", "ai.backend.service-ports": "api:preopen:[8000,8001]"}, "can read"),
])
def test_labels_the_manager_rejects(labels, why):
    reason = label_skip_reason(labels)
    assert reason is not None and why in reason


@pytest.mark.parametrize("labels", [
    {"ai.backend.kernelspec": " 01 "},
    {"ai.backend.service-ports": "ipython:pty:3000,jupyter:http:8091"},  # pty is dropped, port not checked
    {"ai.backend.service-ports": "jupyter:http:8091, vscode:http:8180"},  # unreadable pieces are dropped
    {"ai.backend.role": "INFERENCE", "ai.backend.endpoint-ports": "api", "ai.backend.model-path": "/m",
     "ai.backend.model-format": "x", "ai.backend.service-ports": "api:preopen:8000"},
])
def test_labels_the_manager_accepts(labels):
    assert label_skip_reason(labels) is None


def test_accelerators_as_the_manager_records_them():
    assert accelerators({"a": "b"}) == ("*", None)
    assert accelerators(KERNEL) == (None, None)
    labels = {**KERNEL, "ai.backend.accelerators": "cuda", "ai.backend.resource.min.rocm.device": "1",
              "ai.backend.resource.min.cpu": "1", "ai.backend.resource.max.mem": "1g"}
    assert accelerators(labels) == ("cuda,rocm", None)
    verdict, why, _ = decide({**KERNEL, "ai.backend.resource.min": "1"}, tag="1", repository="x")
    assert verdict is Verdict.FAILS and "IndexError" in why


@pytest.mark.parametrize(("tag", "ok"), [
    ("latest", True), ("3.12-py312-ubuntu22.04", True), ("24.03-cuda12.1", True), ("1.0", True),
    ("2024-06-01", False), ("1.0-py312-py311", False), ("-x", False), ("1.0-", False),
])
def test_tags(tag, ok):
    assert (tag_skip_reason(tag) is None) is ok


def test_project_and_architectures():
    assert decide(KERNEL, tag="1", repository="projectx/a", project="project")[0] is Verdict.SKIPPED
    assert decide(KERNEL, tag="1", repository="project/a", project="project")[0] is Verdict.KERNEL
    assert decide(KERNEL, tag="1", repository="project", project="project")[0] is Verdict.KERNEL
    assert (alias_arch("amd64"), alias_arch("arm64"), alias_arch("s390x")) == ("x86_64", "aarch64", "s390x")
    assert oci_manifest_arch(None, "1.0-arm64") == "aarch64" and oci_manifest_arch(None, "1.0") == "x86_64"
