"""What an agent derives from an image's labels when it creates a kernel container (spec §5.6, §7).

Pure functions of the labels (and overrides), so ``run``, ``test`` and the
tests share one place for the environment, the resource limits and the
``/home/config`` files.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from krunner.contract import CORECOUNT_LABEL, RESOURCE_MIN_PREFIX, SERVICE_PORTS_LABEL

DEFAULT_CPUS = 1.0
DEFAULT_MEM = 1 << 30  # 1 GiB when the image asks for nothing


@dataclass(frozen=True)
class Resources:
    cpus: float
    mem_bytes: int

    def docker_kwargs(self) -> dict[str, int]:
        return {"nano_cpus": int(self.cpus * 1e9), "mem_limit": self.mem_bytes}


@dataclass(frozen=True)
class AgentSettings:
    env: dict[str, str]
    resources: Resources
    config_files: dict[str, str] = field(default_factory=dict)  # name in /home/config -> text


def resources_from_labels(labels: dict[str, str], cpus: float | None = None, mem: str | None = None) -> Resources:
    """``ai.backend.resource.min.cpu``/``.mem`` as the limits (the smallest session the image allows),
    raised to at least one CPU and 1 GiB; *cpus*/*mem* override."""
    from ..rules.labels import parse_binary_size

    want_cpus = cpus if cpus is not None else max(DEFAULT_CPUS, _number(labels.get(RESOURCE_MIN_PREFIX + ".cpu"), 0))
    want_cpus = min(want_cpus, float(os.cpu_count() or 1))
    raw_mem = mem if mem is not None else labels.get(RESOURCE_MIN_PREFIX + ".mem")
    mem_bytes = DEFAULT_MEM
    if raw_mem:
        try:
            mem_bytes = int(parse_binary_size(raw_mem))
        except ValueError:
            if mem is not None:
                raise
        if mem is None:
            mem_bytes = max(mem_bytes, DEFAULT_MEM)
    return Resources(cpus=want_cpus, mem_bytes=mem_bytes)


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default


def agent_settings(image: str, labels: dict[str, str], resources: Resources) -> AgentSettings:
    session_id = str(uuid.uuid4())
    cores = max(1, int(resources.cpus))
    env = {
        "BACKENDAI_SESSION_ID": session_id,
        "BACKENDAI_SESSION_NAME": f"imagekit-{session_id[:8]}",
        "BACKENDAI_CLUSTER_MODE": "single-node",
        "BACKENDAI_CLUSTER_SIZE": "1",
        "BACKENDAI_CLUSTER_ROLE": "main",
        "BACKENDAI_CLUSTER_IDX": "1",
        "BACKENDAI_CLUSTER_HOST": "main1",
        "BACKENDAI_CLUSTER_HOSTS": "main1",
        "BACKENDAI_CLUSTER_REPLICAS": "main:1",
        "BACKENDAI_SERVICE_PORTS": labels.get(SERVICE_PORTS_LABEL, ""),
    }
    for name in labels.get(CORECOUNT_LABEL, "").split(","):
        if name.strip():
            env[name.strip()] = str(cores)
    resource_txt = "".join(
        f"{k}={v}\n" for k, v in (("cpu", f"{resources.cpus:g}"), ("mem", str(resources.mem_bytes)), ("cpuset", f"0-{cores - 1}"))
    )
    return AgentSettings(env=env, resources=resources, config_files={"resource.txt": resource_txt})
