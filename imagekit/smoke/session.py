"""One kernel container started like the agent starts it, plus what the checks need to know about it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from krunner.contract import (
    FEATURES_LABEL,
    INTRINSIC_SERVICE_PORTS,
    RUNTIME_PATH_LABEL,
    RUNTIME_TYPE_LABEL,
    SERVICE_PORTS_LABEL,
)

from ..harness.agent_env import Resources, agent_settings, resources_from_labels
from ..harness.client import AgentClient, PtyClient
from ..harness.container import KernelContainer, start_kernel_container
from ..harness.krunner_mount import KrunnerMount
from ..rules.service_ports import PortEntry, parse_service_ports
from ..runner_target import RunnerTarget

INTRINSIC_PORTS = INTRINSIC_SERVICE_PORTS


@dataclass(frozen=True)
class ImageFacts:
    """What the image's labels promise (the checks hold the image to it)."""

    image: str
    labels: dict[str, str]

    @property
    def runtime_type(self) -> str:
        return self.labels.get(RUNTIME_TYPE_LABEL, "app") or "app"

    @property
    def runtime_path(self) -> str | None:
        return self.labels.get(RUNTIME_PATH_LABEL) or None

    @property
    def features(self) -> set[str]:
        return set(self.labels.get(FEATURES_LABEL, "").split())

    @property
    def services(self) -> list[PortEntry]:
        return parse_service_ports(self.labels.get(SERVICE_PORTS_LABEL, "")).active()

    @property
    def container_ports(self) -> list[int]:
        ports = {p for entry in self.services for p in entry.ports}
        return sorted(ports | set(INTRINSIC_PORTS.values()))


@dataclass
class SmokeSession:
    """The container under test and connections to it; :meth:`close` removes everything."""

    facts: ImageFacts
    kernel: KernelContainer
    _clients: list[AgentClient | PtyClient] = field(default_factory=list)
    _agent: AgentClient | None = None
    notes: dict[str, str] = field(default_factory=dict)  # facts checks share (e.g. rendered URLs)
    #: the runner inside (``--runner``): checks that test a runner's own features know which one
    runner: RunnerTarget = RunnerTarget.KRUNNER
    #: every wait of the checks is multiplied by this (``test --platform`` under emulation)
    timeout_scale: float = 1.0

    @classmethod
    def start(
        cls,
        facts: ImageFacts,
        krunner: KrunnerMount,
        client: docker.DockerClient,
        *,
        extra_mounts: list[tuple[Path, str]] | None = None,
        uid: int = 1000,
        gid: int = 1000,
        resources: Resources | None = None,
        name_prefix: str = "bai-imagekit-test",
        platform: str | None = None,
        timeout_scale: float = 1.0,
    ) -> "SmokeSession":
        settings = agent_settings(facts.image, facts.labels, resources or resources_from_labels(facts.labels))
        kernel = start_kernel_container(
            facts.image,
            facts.runtime_type,
            facts.runtime_path,
            krunner=krunner,
            client=client,
            uid=uid,
            gid=gid,
            extra_ports=facts.container_ports,
            extra_mounts=extra_mounts or [],
            name_prefix=name_prefix,
            env=settings.env,
            resources=settings.resources.docker_kwargs(),
            config_files=settings.config_files,
            platform=platform,
        )
        return cls(facts, kernel, timeout_scale=timeout_scale)

    def scaled(self, seconds: float) -> float:
        """*seconds* for this session: longer under emulation."""
        return seconds * self.timeout_scale

    def agent(self, timeout: float = 30.0) -> AgentClient:
        """The agent-side connection, one per session like a real agent's (reconnecting per check
        would race the runner's PUSH socket, which may still hand a reply to the closed peer).
        Records left over from an earlier check are dropped; *timeout* is the default wait."""
        if self._agent is None:
            self._agent = AgentClient(self.kernel.repl_in_port, self.kernel.repl_out_port, timeout=timeout)
            self._agent.timeout_scale = self.timeout_scale
            self._clients.append(self._agent)
        self._agent.timeout = timeout
        self._agent.drain_stash()
        return self._agent

    def pty(self) -> PtyClient:
        c = PtyClient(self.kernel.pty_in_port, self.kernel.pty_out_port)
        c.timeout_scale = self.timeout_scale
        self._clients.append(c)
        return c

    def exec(self, argv: list[str] | str, user: str | None = None) -> tuple[int, str]:
        return self.kernel.exec_run(argv, user=user)

    def write_work_file(self, name: str, text: str) -> None:
        """Put a file into ``/home/work`` (the host-side scratch dir, as the agent's vfolder would)."""
        path = self.kernel.work_dir / name
        path.write_text(text)
        path.chmod(0o644)

    def close_clients(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()
        self._agent = None

    def close(self) -> None:
        try:
            self.close_clients()
        finally:
            self.kernel.stop()


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.2) -> object:
    """Poll *predicate* until it returns something truthy or *timeout* passes (then return its last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class ProbeError(RuntimeError):
    """A probe could not run in the container (the message has its output)."""


def probe(session: SmokeSession, code: str, *args: str, user: str = "0:0") -> Any:
    """Run a Python snippet with krunner's own interpreter inside the container (works in any image:
    the krunner volume brings Python); the snippet prints one JSON value, which is returned."""
    from ..harness.container import RUNNER_PYTHON

    exit_code, output = session.exec([RUNNER_PYTHON, "-s", "-c", code, *args], user=user)
    try:
        if exit_code == 0:
            return json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        pass
    raise ProbeError(f"probe failed (exit {exit_code}): {output[-1000:]}")


def container_env(session: SmokeSession, name: str) -> str | None:
    """A variable of the container's ``Env`` as created (e.g. ``LOCAL_USER_ID``)."""
    for item in session.kernel.container.attrs["Config"]["Env"] or []:
        key, _, value = item.partition("=")
        if key == name:
            return value
    return None
