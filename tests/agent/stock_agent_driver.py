"""Start a kernel container with the stock Backend.AI agent code and drive it.

Run it with the agent's own interpreter (the agent needs Python 3.13)::

    /tmp/agentvenv/bin/python tests/agent/stock_agent_driver.py prepare
    /tmp/agentvenv/bin/python tests/agent/stock_agent_driver.py run \\
        --image bai-test/python:latest --krunner-volumes '{"static-gnu": "..."}' \\
        --steps '[{"op": "query", "code": "print(1+1)"}]'

Both sub-commands print exactly one JSON document on stdout (logs go to stderr), so a
test suite running under another Python can call this file as a subprocess.

Nothing of the agent is copied, patched or subclassed. The installed PyPI packages
(``backend.ai-agent``, ``backend.ai-kernel``, a ``backend.ai-krunner-*`` package) are
imported and their classes are constructed the way ``DockerAgent`` constructs them.
``AbstractAgent.create_kernel()`` (ai/backend/agent/agent.py) is a method of a full
agent, which needs etcd, Redis/Valkey, an RPC server and a socket-relay container, so
:func:`create_kernel` below walks through the same sequence of creation-context calls
itself:

==============================================  =========================================
``AbstractAgent.create_kernel``                 here
==============================================  =========================================
``DockerAgent.__init__/__ainit__``              :func:`build_agent_config`,
                                                :func:`build_computers`, :class:`AgentParts`
``DockerAgent.init_kernel_context``             :func:`init_kernel_context`
uid/gid/extra env-vars                          :func:`base_environ`
``check_image`` / ``pull_image``                never pulls: the image must be local
``ctx.generate_resource_spec``                  same call
``ctx.get_intrinsic_mounts``                    same call
``allocate(...)``                               same function (``ai.backend.agent.resources``)
``ctx.prepare_scratch``                         same call
``ctx.apply_network`` / ``ctx.prepare_ssh``     same calls (single-node, default network)
``ctx.mount_vfolders`` / ``ctx.mount_krunner``  same calls (no vfolders)
``ctx.inject_additional_device_env_vars``       same call
corecount env-vars, GPU env-vars                :func:`device_environ`
``ctx.process_mounts``                          same call
service ports (sshd, ttyd, image labels)        :func:`build_service_ports`
krunner command line                            :func:`build_cmdargs`
``restart_kernel__store_config``                skipped (only used for restarts)
``ctx.prepare_container``                       same call, returns the agent's ``DockerKernel``
``ctx.start_container``                         same call (creates + starts the container)
``kernel_obj.init(event_producer)``             same call, creates ``DockerCodeRunner``
``check_status`` + ``get_service_apps`` retry   :func:`wait_for_kernel_runner`
``destroy_kernel`` + ``clean_kernel``           :func:`destroy_kernel` (stop, delete, the
                                                agent's ``_clean_scratch``)
==============================================  =========================================

Afterwards each scenario step calls the matching ``DockerKernel`` method (``execute``,
``interrupt_kernel``, ``get_completions``, ``start_service``, ...), exactly what the
agent's RPC handlers do with ``self.kernel_registry[kernel_id]``.

Stand-ins for what a full agent would have (the smallest real objects that work):

* events: a real ``EventProducer`` over :class:`RecordingMessageQueue`, an implementation
  of the ``AbstractMessageQueue`` interface that keeps the messages in memory. The
  creation context and the code runner only store the producer.
* etcd: a real, never-connected ``AsyncEtcd`` built from the config, passed to the
  ``NetworkPluginContext`` (whose plugins are only consulted for overlay/host networks).
* agent socket (``/opt/kernel/agent.sock``): a listening UNIX socket with no handler.
  The stock agent relays it to its ZeroMQ REP handler, used only by jail sandboxes.
* base distro: the ``ai.backend.base-distro`` label, else ``--distro``, else the agent's
  own libc probe helpers in a throw-away container (the agent caches that in Valkey).

Step format (``--steps`` takes inline JSON or a path to a JSON file; a list of steps,
or an object with a ``steps`` list)::

    {"op": "query", "code": "print(1)", "inputs": ["x"], "interrupt_after": 1.0}
    {"op": "batch", "clean": "", "build": "", "exec": "echo hi"}
    {"op": "interrupt"}  {"op": "complete", "code": "pri"}  {"op": "status"}
    {"op": "ping"}  {"op": "service_apps"}  {"op": "logs"}  {"op": "sleep", "seconds": 1}
    {"op": "start_service", "name": "ttyd", "opts": {}}  {"op": "shutdown_service", "name": "ttyd"}
    {"op": "upload", "path": "a.txt", "data": "text"}   (or "data_b64")
    {"op": "list_files", "path": "."}  {"op": "download", "path": "a.txt"}
    {"op": "download_single", "path": "a.txt"}  {"op": "restart_runner"}
    {"op": "start_model_service", "model": {"name": "m", "model_path": "/models",
        "service": {"start_command": "python -m http.server 8000", "port": 8000}}}
    {"op": "bench_query", "code": "x = 1", "rounds": 200, "warmup": 20}
    {"op": "bench_output", "code": "print('x' * 10_000_000)", "repeat": 5, "warmup": 0,
        "expect_bytes": 10000001}
    {"op": "container_memory", "idle_seconds": 5}

Every step may carry ``"timeout"`` (seconds, default 60). Query and batch steps also take
``"flush_timeout"`` (default ``--flush-timeout``) and ``"continue_delay"`` (seconds to wait
before the "continue" that follows clean-finished/build-finished, like a slow client).

``start_model_service`` validates ``model`` (one ``models[]`` entry of model-definition.yaml)
with the agent's ``ai.backend.common.config.ModelDefinition`` and sends
``model.model_dump(mode="json")`` through ``kernel.start_model_service``, as
``start_model_service_and_handle_failure`` does; the entry holds ``model`` (the validated,
dumped entry), ``result`` (the runner's reply, ``{"status": "failed", "error": "timeout"}``
after 10 s or the health-check budget) and ``agent_would_destroy`` (the agent destroys the
kernel when the status is "failed"; here the step stays ``ok``). The agent's create_kernel
also opens the model's port as a preopen service port and falls back to the image's ``Cmd``
when ``start_command`` is missing; here pass ``--preopen-port`` and a ``start_command``.

Benchmark steps run queries through the same ``kernel.execute`` loop as ``query`` steps
(:func:`run_execution`), each run timed in-process with ``time.perf_counter`` from the first
``execute()`` call to the reply carrying "finished"; a run that does not finish with exit
code 0 fails the step. ``"timeout"`` is the budget of the whole step (all runs).
``bench_query`` gives ``n``, ``p50_ms``, ``p99_ms``, ``mean_ms``, ``min_ms``, ``max_ms``
over ``rounds`` runs after ``warmup`` untimed ones. ``bench_output`` gives ``median_ms``,
``runs_ms``, ``stdout_bytes`` (UTF-8 bytes of stdout each run delivered; the agent cuts
every output record at 10 MiB), ``execute_calls`` and, with ``expect_bytes``, ``complete``.
``container_memory`` sleeps ``idle_seconds``, then takes one no-stream Docker stats sample
with the agent's ``fetch_api_stats`` and gives ``usage_minus_inactive_file_mib`` (what
``docker stats`` and the agent's cgroup stat mode show), ``usage_mib`` (the agent's
Docker-API stat mode), ``rss_mib`` and ``limit_mib``.

Batch caveat, from ``AbstractCodeRunner.get_next_result``: on clean-finished and
build-finished the runner calls ``next_output_queue()``, which detaches the output queue of
the run; until the client's "continue" re-attaches one, ``read_output()`` drops every
record (stdout, stderr, even "finished"). A late "continue" then only ever gets "continued"
and the step ends with ``"error": "timeout: ..."``. Worse, a run that never sees "finished"
blocks every later run in ``attach_output_queue()``, and cancelling ``execute()`` makes
the agent close the code runner; use a ``restart_runner`` step to recover.

Output of ``run``: ``{"ok", "image", "kernel", "container", "startup", "steps", "events",
"error", "container_logs"}``. ``kernel`` holds ids, ports, service ports, the command line
and the resource spec (with every mount); ``container`` is what Docker recorded (entrypoint,
cmd, env, mounts, port bindings). Each step entry has ``op``, ``ok`` (no driver/agent
error), ``error`` (a string or null), ``duration``; query/batch entries add ``status``,
``exitCode``, ``console``, ``stdout``, ``stderr`` and ``calls`` (every ``execute()`` reply).
Every step entry also has ``ended_at``: seconds from the start of create_kernel to the end of
the step (for the first query step: cold start to first answer). ``startup`` holds the
first ``check_status()`` reply (``status``), ``service_apps`` and ``timings``: seconds from
the start of create_kernel to ``container_start`` (just before ``ctx.start_container``),
``container_started`` (it returned: container created and started), ``first_status`` (the
first ``check_status()`` that returned in the agent's wait loop) and ``ready`` (the loop
ended: status and service apps answered), plus ``container_start_to_first_status``.
The exit status is 0 when every step is ``ok``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import logging
import secrets
import socket
import statistics
import os
import sys
import tarfile
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Literal, TextIO, cast

import zmq
from ai.backend.agent.affinity_map import AffinityMap
from ai.backend.agent.agent import update_additional_gids
from ai.backend.agent.config.unified import AgentUnifiedConfig, ContainerSandboxType
from ai.backend.agent.docker.agent import (
    DockerKernelCreationContext,
    _clean_scratch,
    _libc_probe_commands,
    _parse_distro_from_ldd_output,
)
from ai.backend.agent.docker.intrinsic import CPUPlugin, MemoryPlugin, fetch_api_stats
from ai.backend.agent.docker.kernel import DockerKernel, prepare_krunner_env
from ai.backend.agent.docker.resources import scan_available_resources
from ai.backend.agent.plugin.network import NetworkPluginContext
from ai.backend.agent.port_pool import PortPool
from ai.backend.agent.resources import (
    AbstractComputePlugin,
    ComputerContext,
    KernelResourceSpec,
    allocate,
)
from ai.backend.agent.types import KernelOwnershipData
from ai.backend.agent.utils import get_arch_name
from ai.backend.common.config import ModelConfig, ModelDefinition
from ai.backend.common.docker import ImageRef, KernelFeatures, LabelName
from ai.backend.common.etcd import AsyncEtcd, ConfigScopes
from ai.backend.common.events.dispatcher import EventProducer
from ai.backend.common.message_queue.abc.queue import AbstractMessageQueue
from ai.backend.common.message_queue.message import MessageId, MQMessage
from ai.backend.common.message_queue.payload import (
    AnycastMessagePayload,
    BroadcastMessagePayload,
    CachedBroadcastMessagePayload,
)
from ai.backend.common.service_ports import parse_service_ports
from ai.backend.common.types import (
    AgentId,
    AutoPullBehavior,
    ClusterInfo,
    ClusterMode,
    ContainerId,
    DeviceName,
    ImageConfig,
    KernelCreationConfig,
    KernelId,
    ServicePort,
    ServicePortProtocols,
    SessionId,
    SessionTypes,
    SlotName,
)
from aiodocker.docker import Docker
from aiodocker.exceptions import DockerError
from tenacity import (
    AsyncRetrying,
    TryAgain,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)

log = logging.getLogger("stock_agent_driver")

JSON = dict[str, Any]
ExecMode = Literal["batch", "query", "input", "continue"]

DEFAULT_PORT_RANGE = (30000, 31000)
DEFAULT_STEP_TIMEOUT = 60.0
EXEC_API_VERSION = (
    4  # what kernel.init() negotiates (ai.backend.agent.kernel.default_api_version)
)


# --------------------------------------------------------------------------- stand-ins


class RecordingMessageQueue(AbstractMessageQueue):
    """In-memory ``AbstractMessageQueue`` for a real ``EventProducer``: keeps what is sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, payload: AnycastMessagePayload) -> None:
        self.sent.append(f"anycast:{payload.name}")

    async def broadcast(self, payload: BroadcastMessagePayload) -> None:
        self.sent.append(f"broadcast:{payload.name}")

    async def broadcast_with_cache(
        self, cache_id: str, payload: BroadcastMessagePayload
    ) -> None:
        self.sent.append(f"broadcast:{payload.name}")

    async def fetch_cached_broadcast_message(
        self, cache_id: str
    ) -> BroadcastMessagePayload | None:
        return None

    async def broadcast_batch(
        self, events: list[CachedBroadcastMessagePayload]
    ) -> None:
        self.sent.extend(f"broadcast:{event.payload.name}" for event in events)

    async def consume_queue(self) -> AsyncIterator[MQMessage]:  # type: ignore[override]
        return
        yield  # an empty async generator

    async def subscribe_queue(self) -> AsyncIterator[MQMessage]:  # type: ignore[override]
        return
        yield

    async def done(self, msg_id: MessageId) -> None:
        pass

    async def close(self) -> None:
        pass


@contextlib.contextmanager
def agent_socket(path: Path) -> Iterator[Path]:
    """A listening UNIX socket where the agent's socket relay would put one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(0o777)
        sock.listen()
        yield path
    finally:
        sock.close()
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- agent parts


@dataclass
class DriverOptions:
    image: str
    krunner_volumes: Mapping[str, str] | None
    work_root: Path
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    distro: str | None = None
    kernel_uid: int | None = None
    kernel_gid: int | None = None
    cpu: str = "1"
    mem: str = "1073741824"
    environ: Mapping[str, str] = field(default_factory=dict)
    bootstrap_script: str | None = None
    preopen_ports: list[int] = field(default_factory=list)
    debug_kernel_runner: bool = False
    flush_timeout: float = 2.0
    keep_container: bool = False


def build_agent_config(opts: DriverOptions, agent_id: str) -> AgentUnifiedConfig:
    """The smallest ``AgentUnifiedConfig`` a Docker agent accepts, rooted in ``work_root``."""
    container: JSON = {
        "scratch-root": str(opts.work_root / "scratches"),
        "scratch-type": "hostdir",
        "sandbox-type": ContainerSandboxType.DOCKER.value,
        "bind-host": "127.0.0.1",
        "advertised-host": "127.0.0.1",
        "port-range": list(opts.port_range),
    }
    if opts.kernel_uid is not None:
        container["kernel-uid"] = opts.kernel_uid
    if opts.kernel_gid is not None:
        container["kernel-gid"] = opts.kernel_gid
    config = AgentUnifiedConfig.model_validate(
        {
            "agent": {
                "backend": "docker",
                "id": agent_id,
                "ipc-base-path": str(opts.work_root / "ipc"),
                "var-base-path": str(opts.work_root / "var"),
                "image-commit-path": str(opts.work_root / "commit"),
            },
            "container": container,
            "resource": {},
            "etcd": {"namespace": "local", "addr": {"host": "127.0.0.1", "port": 2379}},
            "debug": {"kernel-runner": opts.debug_kernel_runner},
        }
    )
    # What ai.backend.agent.server.prepare_krunner_volumes() does after prepare_krunner_env().
    config.update(
        container_update={"krunner_volumes": dict(opts.krunner_volumes or {})}
    )
    return config


def build_unconnected_etcd(config: AgentUnifiedConfig) -> AsyncEtcd:
    """A real ``AsyncEtcd`` built like ``server.etcd_ctx``; it connects lazily and
    nothing here reads from it (no ``async with``, so it never connects)."""
    return AsyncEtcd(
        [addr.to_legacy() for addr in config.etcd.to_dataclass().addrs],
        config.etcd.namespace,
        {
            ConfigScopes.GLOBAL: "",
            ConfigScopes.SGROUP: f"sgroup/{config.agent.legacy_sgroup_name()}",
            ConfigScopes.NODE: f"nodes/agents/{config.agent.defaulted_id}",
        },
    )


async def build_computers(
    config: AgentUnifiedConfig,
) -> dict[DeviceName, ComputerContext]:
    """The intrinsic cpu/mem plugins as ``docker.resources.load_resources`` attaches them
    (with an empty etcd plugin config), wrapped like ``ResourceAllocator.__ainit__``.
    No accelerator plugin is loaded."""
    dumped = config.model_dump(by_alias=True)
    plugins: list[AbstractComputePlugin] = [
        CPUPlugin({}, dumped),
        MemoryPlugin({}, dumped),
    ]
    computers: dict[DeviceName, ComputerContext] = {}
    for plugin in plugins:
        await plugin.init()
        devices = await plugin.list_devices()
        computers[plugin.key] = ComputerContext(
            plugin, devices, await plugin.create_alloc_map()
        )
    # The agent's start-up resource scan; it also registers the known slot types
    # (ai.backend.agent.resources.known_slot_types) that prepare_resource_spec() checks.
    await scan_available_resources({name: c.instance for name, c in computers.items()})
    return computers


async def seccomp_profile_as_path() -> bool:
    """``DockerAgent.__ainit__``: Podman wants the seccomp profile as a file path."""
    async with Docker() as docker:
        version = await docker.version()
    names = {c.get("Name") for c in version.get("Components") or []}
    return "Podman Engine" in names


async def discard_busy_ports(pool: PortPool) -> None:
    """Keep host ports that running containers already publish out of the pool
    (the agent does this for its own containers when it starts)."""
    async with Docker() as docker:
        for container in await docker.containers.list():
            for port in container["Ports"] or []:
                if public := port.get("PublicPort"):
                    pool.discard(int(public))


@dataclass
class AgentParts:
    """What ``DockerAgent`` holds and hands to every ``DockerKernelCreationContext``."""

    agent_id: AgentId
    config: AgentUnifiedConfig
    computers: dict[DeviceName, ComputerContext]
    affinity_map: AffinityMap
    port_pool: PortPool
    resource_lock: asyncio.Lock
    network_plugin_ctx: NetworkPluginContext
    event_producer: EventProducer
    message_queue: RecordingMessageQueue
    agent_sockpath: Path
    seccomp_profile_as_path: bool

    @classmethod
    async def create(cls, opts: DriverOptions) -> AgentParts:
        agent_id = AgentId(f"stock-driver-{secrets.token_hex(4)}")
        config = build_agent_config(opts, agent_id)
        computers = await build_computers(config)
        devices = list(chain.from_iterable(c.devices for c in computers.values()))
        pool = PortPool(
            config.container.port_range,
            cooldown_sec=config.container.port_reuse_cooldown_sec,
        )
        await discard_busy_ports(pool)
        mq = RecordingMessageQueue()
        return cls(
            agent_id=agent_id,
            config=config,
            computers=computers,
            affinity_map=AffinityMap.build(devices),
            port_pool=pool,
            resource_lock=asyncio.Lock(),
            network_plugin_ctx=NetworkPluginContext(
                build_unconnected_etcd(config), config.model_dump(by_alias=True)
            ),
            event_producer=EventProducer(mq, source=agent_id),
            message_queue=mq,
            agent_sockpath=config.agent.ipc_base_path
            / "container"
            / f"agent.{agent_id}.sock",
            seccomp_profile_as_path=await seccomp_profile_as_path(),
        )

    async def close(self) -> None:
        for computer in self.computers.values():
            await computer.instance.cleanup()


# --------------------------------------------------------------------------- kernel config


async def inspect_image(image: str) -> JSON:
    async with Docker() as docker:
        return await docker.images.inspect(image)


async def probe_distro(image: str) -> str:
    """The agent's libc probe commands and parser, run in a throw-away container."""
    async with Docker() as docker:
        for cmd in _libc_probe_commands(get_arch_name()):
            container = await docker.containers.create(
                {
                    "Image": image,
                    "Entrypoint": [""],
                    "Cmd": cmd,
                    "Tty": True,
                    "HostConfig": {"Init": True},
                }
            )
            try:
                await container.start()
                await container.wait()
                output = await container.log(stdout=True, stderr=True)
            except DockerError:
                continue
            finally:
                await container.delete(force=True)
            if distro := _parse_distro_from_ldd_output(output):
                return distro
    raise RuntimeError(f"cannot determine the C library of {image}")


def image_config(image: str, inspected: JSON) -> ImageConfig:
    """What the manager sends for a locally installed image."""
    return {
        "canonical": image,
        "project": None,
        "architecture": get_arch_name(),
        "digest": inspected["Id"],
        "repo_digest": None,
        "registry": {
            "name": "local",
            "url": "http://localhost",
            "username": None,
            "password": None,
        },
        "labels": (inspected.get("Config") or {}).get("Labels") or {},
        "is_local": True,
        "auto_pull": AutoPullBehavior.NONE,
    }


def kernel_creation_config(
    opts: DriverOptions,
    ownership: KernelOwnershipData,
    image: ImageConfig,
) -> KernelCreationConfig:
    """A single-kernel interactive session as the manager would request it."""
    hostname = "main1"
    environ = {
        "BACKENDAI_SESSION_ID": str(ownership.session_id),
        "BACKENDAI_KERNEL_ID": str(ownership.kernel_id),
        "BACKENDAI_CLUSTER_SIZE": "1",
        "BACKENDAI_CLUSTER_REPLICAS": "main:1",
        "BACKENDAI_CLUSTER_HOSTS": hostname,
        "BACKENDAI_CLUSTER_HOST": hostname,
        "BACKENDAI_CLUSTER_ROLE": "main",
        "BACKENDAI_CLUSTER_IDX": "1",
        "BACKENDAI_CLUSTER_LOCAL_RANK": "0",
        **opts.environ,
    }
    return {
        "image": image,
        "kernel_id": str(ownership.kernel_id),
        "session_id": str(ownership.session_id),
        "owner_user_id": str(ownership.owner_user_id),
        "owner_project_id": None,
        "network_id": str(ownership.session_id),
        "auto_pull": AutoPullBehavior.NONE,
        "session_type": SessionTypes.INTERACTIVE,
        "cluster_mode": ClusterMode.SINGLE_NODE,
        "cluster_role": "main",
        "cluster_idx": 1,
        "cluster_hostname": hostname,
        "local_rank": 0,
        "uid": None,
        "main_gid": None,
        "supplementary_gids": [],
        "resource_slots": {"cpu": opts.cpu, "mem": opts.mem},
        "resource_opts": {},
        "environ": environ,
        "mounts": [],
        "package_directory": [],
        "idle_timeout": 600,
        "bootstrap_script": opts.bootstrap_script,
        "startup_command": None,
        "internal_data": None,
        "preopen_ports": list(opts.preopen_ports),
        "allocated_host_ports": [],
        "scaling_group": "default",
        "agent_addr": "tcp://127.0.0.1:6001",
        "endpoint_id": None,
    }


def single_node_cluster_info() -> ClusterInfo:
    return {
        "mode": ClusterMode.SINGLE_NODE,
        "size": 1,
        "replicas": {"main": 1},
        "network_config": {},  # default Docker network, no network plugin
        "ssh_keypair": None,
        "cluster_ssh_port_mapping": None,
    }


# --------------------------------------------------------------------------- create_kernel


@dataclass
class StartupClock:
    """``time.perf_counter()`` marks taken during :func:`create_kernel`, reported as
    seconds since the first one (the start of ``create_kernel``)."""

    origin: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter())

    def since_origin(self, at: float | None = None) -> float:
        return round((time.perf_counter() if at is None else at) - self.origin, 4)

    def as_json(self) -> JSON:
        timings: JSON = {name: self.since_origin(at) for name, at in self.marks.items()}
        if "container_start" in self.marks and "first_status" in self.marks:
            timings["container_start_to_first_status"] = round(
                self.marks["first_status"] - self.marks["container_start"], 4
            )
        return timings


@dataclass
class CreatedKernel:
    kernel: DockerKernel
    ctx: DockerKernelCreationContext
    resource_spec: KernelResourceSpec
    service_ports: list[ServicePort]
    cmdargs: list[str]
    startup: JSON
    clock: StartupClock


async def init_kernel_context(
    parts: AgentParts,
    ownership: KernelOwnershipData,
    image_ref: ImageRef,
    kernel_config: KernelCreationConfig,
    distro: str,
) -> DockerKernelCreationContext:
    """``DockerAgent.init_kernel_context`` with the parts a ``DockerAgent`` would hold."""
    return DockerKernelCreationContext(
        ownership,
        parts.event_producer,
        image_ref,
        kernel_config,
        distro,
        parts.config,
        parts.computers,
        parts.port_pool,
        parts.agent_sockpath,
        parts.resource_lock,
        parts.network_plugin_ctx,
        restarting=False,
        cluster_ssh_port_mapping=None,
        gwbridge_subnet=None,
        seccomp_profile_as_path=parts.seccomp_profile_as_path,
    )


async def base_environ(
    ctx: DockerKernelCreationContext, config: AgentUnifiedConfig
) -> dict[str, str]:
    """create_kernel: the manager's environ plus LOCAL_USER_ID/LOCAL_GROUP_ID for gosu."""
    environ: dict[str, str] = {**ctx.kernel_config["environ"]}
    uid_match = KernelFeatures.UID_MATCH in ctx.kernel_features
    if (ouid := ctx.get_overriding_uid()) is not None:
        environ["LOCAL_USER_ID"] = str(ouid)
    elif uid_match:
        environ["LOCAL_USER_ID"] = str(config.container.kernel_uid)
    sgids = set(ctx.get_supplementary_gids() or [])
    if (ogid := ctx.get_overriding_gid()) is not None:
        environ["LOCAL_GROUP_ID"] = str(ogid)
        if uid_match:
            sgids.add(config.container.kernel_gid)
    elif uid_match:
        environ["LOCAL_GROUP_ID"] = str(config.container.kernel_gid)
    environ.update(await ctx.get_extra_envs())
    update_additional_gids(environ, sgids)
    return environ


async def device_environ(
    parts: AgentParts,
    resource_spec: KernelResourceSpec,
    image_labels: Mapping[str, str],
    environ: dict[str, str],
) -> None:
    """create_kernel: corecount env-vars from the image label, then the GPU env-vars
    (only cpu/mem are attached here, so GPU_COUNT=N_GPUS=0)."""
    label = image_labels.get(LabelName.ENVS_CORECOUNT, "")
    cores = len(resource_spec.allocations[DeviceName("cpu")][SlotName("cpu")])
    environ.update({k: str(cores) for k in label.split(",") if k and k not in environ})
    for dev_name, alloc in resource_spec.allocations.items():
        await parts.computers[dev_name].instance.get_attached_devices(alloc)
    environ["GPU_COUNT"] = "0"
    environ["N_GPUS"] = "0"


def build_service_ports(
    image_labels: Mapping[str, str], preopen_ports: Sequence[int]
) -> list[ServicePort]:
    """create_kernel: intrinsic sshd/ttyd, preopen ports, then the image's service ports."""
    ports: list[ServicePort] = [
        {
            "name": "sshd",
            "protocol": ServicePortProtocols.TCP,
            "container_ports": (2200,),
            "host_ports": (None,),
            "is_inference": False,
        },
        {
            "name": "ttyd",
            "protocol": ServicePortProtocols.HTTP,
            "container_ports": (7681,),
            "host_ports": (None,),
            "is_inference": False,
        },
    ]
    for port_no in preopen_ports:
        ports.append(
            {
                "name": str(port_no),
                "protocol": ServicePortProtocols.PREOPEN,
                "container_ports": (port_no,),
                "host_ports": (None,),
                "is_inference": False,
            }
        )
    by_name = {
        sport["name"]: sport
        for sport in parse_service_ports(
            image_labels.get(LabelName.SERVICE_PORTS, ""),
            image_labels.get(LabelName.ENDPOINT_PORTS, ""),
        )
    }
    ports.extend(by_name.values())
    return ports


def build_cmdargs(
    config: AgentUnifiedConfig, image_labels: Mapping[str, str]
) -> list[str]:
    """create_kernel: the krunner command line (the entrypoint is the agent's entrypoint.sh)."""
    cmdargs: list[str] = []
    if config.container.sandbox_type == ContainerSandboxType.JAIL:
        cmdargs += [
            "/opt/kernel/jail",
            *(s.strip() for s in config.container.jail_args),
            "--",
        ]
    krunner_opts = ["--debug"] if config.debug.kernel_runner else []
    cmdargs += [
        "/opt/backend.ai/bin/python",
        "-s",
        "-m",
        "ai.backend.kernel",
        *krunner_opts,
        image_labels.get(LabelName.RUNTIME_TYPE, "app"),
    ]
    if (runtime_path := image_labels.get(LabelName.RUNTIME_PATH)) is not None:
        cmdargs.append(runtime_path)
    return cmdargs


async def wait_for_kernel_runner(
    kernel: DockerKernel,
    service_ports: list[ServicePort],
    config: AgentUnifiedConfig,
    clock: StartupClock,
) -> JSON:
    """create_kernel: poll check_status() + get_service_apps() until the runner answers,
    then merge the live service-app metadata into the service ports. Marks the first
    ``check_status()`` that returned ("first_status") and the end of the loop ("ready")."""
    lifecycles = config.kernel_lifecycles
    status: JSON | None = None
    live: JSON = {}
    async for attempt in AsyncRetrying(
        wait=wait_fixed(0.3),
        stop=(
            stop_after_attempt(lifecycles.init_polling_attempt)
            | stop_after_delay(lifecycles.init_polling_timeout_sec)
        ),
        retry=retry_if_exception_type(zmq.error.ZMQError)
        | retry_if_exception_type(TryAgain),
    ):
        with attempt:
            async with asyncio.timeout(lifecycles.init_timeout_sec):
                status = await kernel.check_status()
                clock.mark("first_status")
                live = await kernel.get_service_apps()
            if live["status"] == "failed":
                raise TryAgain
    for app in live.get("data", []):
        for sport in service_ports:
            if app["name"] == sport["name"]:
                protocol = sport.get("protocol")
                sport.update(app)
                if protocol is not None:
                    sport["protocol"] = protocol
    clock.mark("ready")
    return {"status": status, "service_apps": live}


async def create_kernel(parts: AgentParts, opts: DriverOptions) -> CreatedKernel:
    """``AbstractAgent.create_kernel`` for one interactive single-node kernel."""
    clock = StartupClock()
    inspected = await inspect_image(opts.image)
    image = image_config(opts.image, inspected)
    labels = image["labels"]
    distro = (
        labels.get(LabelName.BASE_DISTRO)
        or opts.distro
        or await probe_distro(opts.image)
    )
    ownership = KernelOwnershipData(
        KernelId(uuid.uuid4()),
        SessionId(uuid.uuid4()),
        parts.agent_id,
        owner_user_id=uuid.uuid4(),
    )
    kernel_config = kernel_creation_config(opts, ownership, image)
    image_ref = ImageRef.from_image_config(image)
    cluster_info = single_node_cluster_info()

    ctx = await init_kernel_context(parts, ownership, image_ref, kernel_config, distro)
    environ = await base_environ(ctx, parts.config)
    if get_arch_name() != ctx.image_ref.architecture:
        raise RuntimeError(f"cannot run {ctx.image_ref.architecture} image here")

    resource_spec, resource_opts = await ctx.generate_resource_spec()
    resource_spec.mounts.extend(await ctx.get_intrinsic_mounts())
    async with parts.resource_lock:
        allocate(
            parts.computers,
            resource_spec,
            [DeviceName(name) for name in parts.config.resource.allocation_order],
            parts.affinity_map,
            parts.config.resource.affinity_policy,
            allow_fractional_resource_fragmentation=True,
        )
    await ctx.prepare_scratch()
    await ctx.apply_network(cluster_info)
    await ctx.prepare_ssh(cluster_info)
    await ctx.mount_vfolders([], resource_spec)
    await ctx.mount_krunner(resource_spec, environ)
    await ctx.inject_additional_device_env_vars(resource_spec, environ)
    await device_environ(parts, resource_spec, labels, environ)
    await ctx.process_mounts(resource_spec.mounts)

    service_ports = build_service_ports(labels, opts.preopen_ports)
    cmdargs = build_cmdargs(parts.config, labels)
    kernel_config["environ"] = environ
    resource_spec.freeze()

    kernel = await ctx.prepare_container(
        resource_spec, environ, service_ports, cluster_info
    )
    kernel.session_type = kernel_config["session_type"]
    clock.mark("container_start")
    container_data = await ctx.start_container(
        kernel, cmdargs, resource_opts, list(opts.preopen_ports), cluster_info
    )
    clock.mark("container_started")
    kernel.data.update(container_data)
    kernel.set_container_id(ContainerId(container_data["container_id"]))
    created = CreatedKernel(
        kernel, ctx, resource_spec, service_ports, cmdargs, startup={}, clock=clock
    )
    await kernel.init(parts.event_producer)
    created.startup = await wait_for_kernel_runner(
        kernel, service_ports, parts.config, clock
    )
    created.startup["timings"] = clock.as_json()
    return created


async def destroy_kernel(
    parts: AgentParts, ctx: DockerKernelCreationContext, kernel: DockerKernel | None
) -> None:
    """``DockerAgent.destroy_kernel`` + ``clean_kernel``: stop, delete (with volumes),
    release ports and allocations, remove the scratch directory."""
    if kernel is not None:
        if kernel.runner is not None:
            await kernel.runner.close()
        await kernel.close()
        if (cid := kernel.container_id) is not None:
            async with Docker() as docker:
                container = docker.containers.container(cid)
                with contextlib.suppress(DockerError):
                    await container.stop()
                with contextlib.suppress(DockerError):
                    await container.delete(force=True, v=True)
        parts.port_pool.release_many(kernel.data.get("host_ports", []))
        kernel.release_slots({str(name): c for name, c in parts.computers.items()})
    await _clean_scratch(
        asyncio.get_running_loop(),
        parts.config.container.scratch_type,
        parts.config.container.scratch_root,
        ctx.kernel_id,
    )


# --------------------------------------------------------------------------- steps


def console_text(console: Sequence[Any], kind: str) -> str:
    return "".join(
        item[1] for item in console if item[0] == kind and isinstance(item[1], str)
    )


class StepTimeout(Exception):
    """A query/batch run did not finish before the step's deadline."""


@dataclass
class Execution:
    """One query or batch run: every ``execute()`` reply, in order."""

    run_id: str
    calls: list[JSON] = field(default_factory=list)
    interrupted: bool = False

    def summary(self) -> JSON:
        console = [item for call in self.calls for item in call.get("console", [])]
        last = self.calls[-1] if self.calls else {}
        return {
            "run_id": self.run_id,
            "status": last.get("status"),
            "exitCode": last.get("exitCode"),
            "console": console,
            "stdout": console_text(console, "stdout"),
            "stderr": console_text(console, "stderr"),
            "interrupted": self.interrupted,
            "calls": self.calls,
        }


async def run_execution(
    kernel: DockerKernel,
    step: JSON,
    run: Execution,
    deadline: float,
    default_flush: float,
) -> None:
    """Drive one query or batch run like the Backend.AI client: the first call in mode
    "query"/"batch", then "continue" after continued/clean-finished/build-finished and
    "input" after waiting-input, until finished (or exec-timeout).

    The deadline is checked between calls (each returns within flush_timeout) instead of
    cancelling ``execute()``: the agent closes the code runner when execute is cancelled."""
    flush_timeout = float(step.get("flush_timeout", default_flush))
    inputs = list(step.get("inputs", []))
    interrupt_after = step.get("interrupt_after")
    continue_delay = float(step.get("continue_delay", 0))
    started = time.monotonic()
    mode: ExecMode
    if step["op"] == "batch":
        mode, text = "batch", ""
        exec_opts = {k: step.get(k, "") for k in ("clean", "build", "exec")}
    else:
        mode, text, exec_opts = "query", step["code"], {}
    while True:
        result = await kernel.execute(
            run.run_id,
            mode,
            text,
            opts=exec_opts,
            api_version=EXEC_API_VERSION,
            flush_timeout=flush_timeout,
        )
        run.calls.append({"mode": mode, **cast(JSON, result)})
        status = result["status"]
        if status in ("finished", "exec-timeout"):
            return
        if time.monotonic() >= deadline:
            raise StepTimeout(
                f"no 'finished' before the deadline (last status: {status})"
            )
        if status == "waiting-input":
            if not inputs:
                raise RuntimeError(
                    "the kernel asks for input but the step has no inputs left"
                )
            mode, text, exec_opts = "input", str(inputs.pop(0)), {}
            continue
        if (
            interrupt_after is not None
            and not run.interrupted
            and time.monotonic() - started >= interrupt_after
        ):
            await kernel.interrupt_kernel()
            run.interrupted = True
        if continue_delay and status in ("clean-finished", "build-finished"):
            await asyncio.sleep(
                continue_delay
            )  # a slow client (see the module docstring)
        mode, text, exec_opts = "continue", "", {}


# --------------------------------------------------------------------------- benchmarks


def milliseconds(seconds: float) -> float:
    return round(seconds * 1000, 3)


def mebibytes(nbytes: float) -> float:
    return round(nbytes / 2**20, 2)


def latency_summary(samples_ms: Sequence[float]) -> JSON:
    ordered = sorted(samples_ms)
    p99 = (
        statistics.quantiles(ordered, n=100, method="inclusive")[98]
        if len(ordered) > 1
        else ordered[0]
    )
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(p99, 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "min_ms": round(ordered[0], 3),
        "max_ms": round(ordered[-1], 3),
    }


async def timed_query(
    kernel: DockerKernel, step: JSON, deadline: float, flush_timeout: float
) -> tuple[float, JSON]:
    """One query run through :func:`run_execution` (the agent's ``kernel.execute`` loop),
    timed with ``perf_counter`` from the first ``execute()`` call until "finished".
    Fails unless the run finished with exit code 0."""
    run = Execution(secrets.token_hex(8))
    started = time.perf_counter()
    await run_execution(kernel, step, run, deadline, flush_timeout)
    elapsed = time.perf_counter() - started
    summary = run.summary()
    if summary["status"] != "finished" or summary["exitCode"] != 0:
        raise RuntimeError(
            f"run {run.run_id}: status={summary['status']} exitCode={summary['exitCode']}"
            f" stderr={summary['stderr'][-500:]!r}"
        )
    return elapsed, summary


async def bench_query(
    kernel: DockerKernel, step: JSON, deadline: float, flush_timeout: float
) -> JSON:
    """``warmup`` untimed runs of ``code``, then ``rounds`` timed ones (one run each)."""
    rounds, warmup = int(step.get("rounds", 200)), int(step.get("warmup", 20))
    samples: list[float] = []
    for index in range(warmup + rounds):
        elapsed, _ = await timed_query(kernel, step, deadline, flush_timeout)
        if index >= warmup:
            samples.append(elapsed * 1000)
    return {"code": step["code"], "warmup": warmup, **latency_summary(samples)}


async def bench_output(
    kernel: DockerKernel, step: JSON, deadline: float, flush_timeout: float
) -> JSON:
    """``repeat`` timed runs of an output-heavy ``code``: the median, and the UTF-8 bytes
    of stdout each run delivered (the agent cuts every output record at 10 MiB)."""
    repeat, warmup = int(step.get("repeat", 5)), int(step.get("warmup", 0))
    runs_ms: list[float] = []
    stdout_bytes: list[int] = []
    calls: list[int] = []
    for index in range(warmup + repeat):
        elapsed, summary = await timed_query(kernel, step, deadline, flush_timeout)
        if index >= warmup:
            runs_ms.append(milliseconds(elapsed))
            stdout_bytes.append(len(summary["stdout"].encode("utf-8")))
            calls.append(len(summary["calls"]))
    result: JSON = {
        "median_ms": round(statistics.median(runs_ms), 3),
        "runs_ms": runs_ms,
        "stdout_bytes": stdout_bytes,
        "execute_calls": calls,
    }
    if (expect := step.get("expect_bytes")) is not None:
        result["complete"] = all(n == int(expect) for n in stdout_bytes)
    return result


def memory_summary(memory_stats: Mapping[str, Any]) -> JSON:
    """Docker's ``memory_stats`` in MiB. ``usage_minus_inactive_file_mib`` is what
    ``docker stats`` shows and what the agent's cgroup stat mode reports (usage minus
    ``total_inactive_file`` on cgroup v1, ``inactive_file`` on v2); ``usage_mib`` is
    what its Docker-API stat mode reports."""
    stats = memory_stats.get("stats") or {}
    usage = int(memory_stats.get("usage", 0))
    inactive = int(stats.get("total_inactive_file", stats.get("inactive_file", 0)))
    rss = stats.get("total_rss", stats.get("anon"))
    return {
        "usage_mib": mebibytes(usage),
        "usage_minus_inactive_file_mib": mebibytes(
            usage - inactive if inactive < usage else usage
        ),
        "rss_mib": None if rss is None else mebibytes(int(rss)),
        "limit_mib": mebibytes(int(memory_stats.get("limit", 0))),
    }


async def container_memory(kernel: DockerKernel, step: JSON) -> JSON:
    """The container's memory after ``idle_seconds`` of sleep, from one no-stream Docker
    stats sample read with the agent's own ``fetch_api_stats``."""
    idle = float(step.get("idle_seconds", 5))
    await asyncio.sleep(idle)
    async with Docker() as docker:
        stats = await fetch_api_stats(
            docker.containers.container(str(kernel.container_id))
        )
    if stats is None:
        raise RuntimeError("Docker returned no stats sample for the container")
    return {"idle_seconds": idle, **memory_summary(stats.get("memory_stats") or {})}


# --------------------------------------------------------------------------- model service


async def start_model_service(kernel: DockerKernel, entry: JSON) -> JSON:
    """One ``models[]`` entry of model-definition.yaml, validated by the agent's
    ``ModelDefinition`` (as ``_load_model_definition`` does) and passed on like
    ``start_model_service_and_handle_failure``. On ``"status": "failed"`` the agent
    would destroy the kernel; here that is only reported."""
    model: ModelConfig = ModelDefinition.model_validate({"models": [entry]}).models[0]
    result = await kernel.start_model_service(model.model_dump(mode="json"))
    return {
        "model": model.model_dump(mode="json"),
        "result": result,
        "agent_would_destroy": result.get("status") == "failed",
    }


def decode_bytes(data: bytes) -> JSON:
    try:
        return {"size": len(data), "text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"size": len(data), "b64": base64.b64encode(data).decode("ascii")}


def untar(data: bytes) -> JSON:
    members: JSON = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            fobj = tar.extractfile(member) if member.isfile() else None
            members[member.name] = (
                decode_bytes(fobj.read())
                if fobj
                else {"type": "dir" if member.isdir() else "other"}
            )
    return members


async def list_files(kernel: DockerKernel, path: str) -> JSON:
    result = await kernel.list_files(path)
    try:
        result["files"] = json.loads(result["files"])
    except ValueError:
        pass
    return result


async def restart_runner(kernel: DockerKernel, event_producer: EventProducer) -> JSON:
    """Close the code runner and create a new one, as the agent does for running kernels
    when it restarts (``scan_running_kernels``). Recovers a runner wedged by a dropped run."""
    if kernel.runner is not None:
        await kernel.runner.close()
    await kernel.init(event_producer)
    return {"result": await kernel.check_status()}


def published_port(kernel: DockerKernel, step: JSON) -> int:
    """The 127.0.0.1 host port the agent published for a service (``service``) or container ``port``."""
    for sport in kernel.service_ports:
        if "service" in step and sport["name"] != step["service"]:
            continue
        host_ports = list(sport.get("host_ports") or ())
        if "port" in step:
            container_ports = [int(p) for p in sport.get("container_ports") or ()]
            if int(step["port"]) in container_ports and len(container_ports) == len(host_ports):
                return int(host_ports[container_ports.index(int(step["port"]))])
            continue
        if host_ports and host_ports[0] is not None:
            return int(host_ports[0])
    raise ValueError(f"no published port for {step.get('service') or step.get('port')!r}")


async def http_get(kernel: DockerKernel, step: JSON) -> JSON:
    """GET a service's URL on its published port, retrying until it answers (a client opening the app)."""
    port = published_port(kernel, step)
    path = str(step.get("path", "/"))
    deadline = time.monotonic() + float(step.get("wait", 30))
    last = ""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            await writer.drain()
            head = (await reader.readline()).decode("latin-1").split()
            writer.close()
            if len(head) >= 2 and head[1].isdigit():
                return {"port": port, "status": int(head[1])}
            last = f"bad status line {head!r}"
        except OSError as e:
            last = str(e)
        await asyncio.sleep(0.5)
    raise TimeoutError(f"http://127.0.0.1:{port}{path} did not answer: {last}")


async def tcp_banner(kernel: DockerKernel, step: JSON) -> JSON:
    """The first line a TCP service sends (an SSH server's version banner)."""
    port = published_port(kernel, step)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        line = await asyncio.wait_for(reader.readline(), float(step.get("wait", 15)))
    finally:
        writer.close()
    return {"port": port, "banner": line.decode("latin-1").strip()}


async def run_step(
    kernel: DockerKernel,
    step: JSON,
    event_producer: EventProducer,
    deadline: float,
    flush_timeout: float,
) -> JSON:
    op = step["op"]
    flush_timeout = float(step.get("flush_timeout", flush_timeout))
    match op:
        case "http_get":
            return await http_get(kernel, step)
        case "tcp_banner":
            return await tcp_banner(kernel, step)
        case "bench_query":
            return await bench_query(kernel, step, deadline, flush_timeout)
        case "bench_output":
            return await bench_output(kernel, step, deadline, flush_timeout)
        case "container_memory":
            return await container_memory(kernel, step)
        case "start_model_service":
            return await start_model_service(kernel, step["model"])
        case "interrupt":
            return {"result": await kernel.interrupt_kernel()}
        case "complete":
            resp = await kernel.get_completions(step["code"], step.get("opts", {}))
            return resp.as_dict()
        case "status":
            return {"result": await kernel.check_status()}
        case "ping":
            return {"result": await kernel.ping()}
        case "service_apps":
            return {"result": await kernel.get_service_apps()}
        case "start_service":
            return {
                "result": await kernel.start_service(step["name"], step.get("opts", {}))
            }
        case "shutdown_service":
            await kernel.shutdown_service(step["name"])
            return {"result": None}
        case "upload":
            data = (
                base64.b64decode(step["data_b64"])
                if "data_b64" in step
                else str(step["data"]).encode()
            )
            await kernel.accept_file(step["path"], data)
            return {"size": len(data)}
        case "list_files":
            return await list_files(kernel, step.get("path", "."))
        case "download":
            return {"members": untar(await kernel.download_file(step["path"]))}
        case "download_single":
            return decode_bytes(await kernel.download_single(step["path"]))
        case "logs":
            return await kernel.get_logs()
        case "restart_runner":
            return await restart_runner(kernel, event_producer)
        case "sleep":
            await asyncio.sleep(float(step.get("seconds", 1)))
            return {}
        case _:
            raise ValueError(f"unknown step op: {op!r}")


async def run_one(
    kernel: DockerKernel,
    step: JSON,
    event_producer: EventProducer,
    flush_timeout: float,
) -> JSON:
    timeout = float(step.get("timeout", DEFAULT_STEP_TIMEOUT))
    entry: JSON = {"op": step.get("op"), "ok": False, "error": None}
    run = (
        Execution(secrets.token_hex(8))
        if step.get("op") in ("query", "batch")
        else None
    )
    # Backstop for a call that never returns (e.g. execute() waiting for a wedged run).
    hard_timeout = timeout + float(step.get("flush_timeout", flush_timeout)) + 10
    deadline = time.monotonic() + timeout
    try:
        async with asyncio.timeout(hard_timeout):
            if run is not None:
                await run_execution(kernel, step, run, deadline, flush_timeout)
            else:
                entry.update(
                    await run_step(
                        kernel, step, event_producer, deadline, flush_timeout
                    )
                )
        entry["ok"] = True
    except StepTimeout as e:
        entry["error"] = f"timeout: {e}"
    except TimeoutError:
        entry["error"] = (
            f"hard timeout after {hard_timeout:.0f}s (a cancelled execute() closes the runner)"
        )
    except Exception as e:  # noqa: BLE001 - every failure becomes the step's "error" string
        entry["error"] = f"{type(e).__name__}: {e}"
    if run is not None:
        entry.update(run.summary())
    return entry


async def run_steps(
    kernel: DockerKernel,
    steps: Sequence[JSON],
    event_producer: EventProducer,
    flush_timeout: float,
    clock: StartupClock,
) -> list[JSON]:
    results: list[JSON] = []
    for step in steps:
        started = time.monotonic()
        entry = await run_one(kernel, step, event_producer, flush_timeout)
        entry["duration"] = round(time.monotonic() - started, 3)
        entry["ended_at"] = clock.since_origin()
        results.append(entry)
    return results


# --------------------------------------------------------------------------- reporting


async def container_facts(container_id: str) -> JSON:
    """The container config the agent produced, as Docker recorded it."""
    async with Docker() as docker:
        info = await docker.containers.container(container_id).show()
    config, host = info["Config"], info["HostConfig"]
    return {
        "name": info["Name"].lstrip("/"),
        "image": config["Image"],
        "entrypoint": config.get("Entrypoint"),
        "cmd": config.get("Cmd"),
        "env": dict(item.split("=", 1) for item in config.get("Env") or []),
        "working_dir": config.get("WorkingDir"),
        "hostname": config.get("Hostname"),
        "labels": {
            k: v
            for k, v in (config.get("Labels") or {}).items()
            if k.startswith("ai.backend.")
        },
        "exposed_ports": sorted(config.get("ExposedPorts") or {}),
        "port_bindings": host.get("PortBindings"),
        "mounts": [
            {
                "type": m["Type"],
                "source": m.get("Source"),
                "target": m["Target"],
                "read_only": m.get("ReadOnly", False),
            }
            for m in host.get("Mounts") or []
        ],
        "init": host.get("Init"),
        "cpus": host.get("NanoCpus") or host.get("Cpus"),
        "cpuset": host.get("CpusetCpus"),
        "memory": host.get("Memory"),
        "cap_add": host.get("CapAdd"),
        "security_opt_kinds": [
            opt.split("=", 1)[0] for opt in host.get("SecurityOpt") or []
        ],
    }


async def container_logs(container_id: str) -> str | None:
    try:
        async with Docker() as docker:
            logs = await docker.containers.container(container_id).log(
                stdout=True, stderr=True
            )
        return "".join(logs)
    except DockerError as e:
        return f"(no logs: {e})"


def kernel_facts(created: CreatedKernel, distro: str) -> JSON:
    kernel = created.kernel
    return {
        "kernel_id": str(kernel.kernel_id),
        "session_id": str(kernel.session_id),
        "container_id": kernel.container_id,
        "distro": distro,
        "krunner": dict(
            zip(
                ("arch", "distro", "libc", "volume", "python"),
                created.ctx.get_krunner_info(),
                strict=True,
            )
        ),
        "kernel_host": kernel.data.get("kernel_host"),
        "repl_in_port": kernel.data.get("repl_in_port"),
        "repl_out_port": kernel.data.get("repl_out_port"),
        "host_ports": kernel.data.get("host_ports"),
        "service_ports": created.service_ports,
        "cmdargs": created.cmdargs,
        "resource_spec": json.loads(created.resource_spec.to_json()),
        "scratch_dir": str(created.ctx.scratch_dir),
    }


# --------------------------------------------------------------------------- commands


async def cmd_prepare(work_root: Path) -> JSON:
    opts = DriverOptions(image="", krunner_volumes=None, work_root=work_root)
    config = build_agent_config(opts, "stock-driver")
    return dict(await prepare_krunner_env(config.model_dump(by_alias=True)))


async def cmd_run(opts: DriverOptions, steps: Sequence[JSON]) -> JSON:
    output: JSON = {
        "ok": False,
        "image": opts.image,
        "kernel": None,
        "container": None,
        "startup": None,
        "steps": [],
        "events": [],
        "error": None,
    }
    parts = await AgentParts.create(opts)
    ctx: DockerKernelCreationContext | None = None
    created: CreatedKernel | None = None
    try:
        with agent_socket(parts.agent_sockpath):
            try:
                created = await create_kernel(parts, opts)
                ctx = created.ctx
                output["kernel"] = kernel_facts(created, ctx.distro)
                output["container"] = await container_facts(
                    str(created.kernel.container_id)
                )
                output["startup"] = created.startup
                output["steps"] = await run_steps(
                    created.kernel,
                    steps,
                    parts.event_producer,
                    opts.flush_timeout,
                    created.clock,
                )
                output["ok"] = all(s["ok"] for s in output["steps"])
            except BaseException as e:
                output["error"] = f"{type(e).__name__}: {e}"
                output["traceback"] = traceback.format_exc()
                if not isinstance(e, Exception):
                    raise
            finally:
                output["events"] = parts.message_queue.sent
                await collect_failure_context(output, parts, created)
                if not opts.keep_container:
                    await cleanup(parts, created)
    finally:
        await parts.close()
    return output


async def collect_failure_context(
    output: JSON, parts: AgentParts, created: CreatedKernel | None
) -> None:
    """Container logs always (they are short); the container config even if startup failed."""
    cid = (
        created.kernel.container_id if created else await find_container(parts.agent_id)
    )
    if cid is None:
        return
    if output["container"] is None:
        with contextlib.suppress(DockerError):
            output["container"] = await container_facts(cid)
    output["container_logs"] = await container_logs(cid)


async def find_container(agent_id: str) -> str | None:
    async with Docker() as docker:
        found = await docker.containers.list(
            all=True,
            filters=json.dumps({"label": [f"{LabelName.AGENT_ID}={agent_id}"]}),
        )
    return found[0].id if found else None


async def cleanup(parts: AgentParts, created: CreatedKernel | None) -> None:
    if created is not None:
        await destroy_kernel(parts, created.ctx, created.kernel)
        return
    if (
        cid := await find_container(parts.agent_id)
    ) is not None:  # start_container failed late
        async with Docker() as docker:
            with contextlib.suppress(DockerError):
                await docker.containers.container(cid).delete(force=True, v=True)


def load_steps(raw: str) -> list[JSON]:
    text = raw if raw.lstrip().startswith(("[", "{")) else Path(raw).read_text()
    data = json.loads(text)
    steps = data["steps"] if isinstance(data, dict) else data
    if not isinstance(steps, list) or not all(
        isinstance(s, dict) and "op" in s for s in steps
    ):
        raise SystemExit("--steps must be a JSON list of objects with an 'op' key")
    return steps


def parse_env(items: Sequence[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="agent logs on stderr"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="create the krunner volumes (prepare_krunner_env)")
    run = sub.add_parser("run", help="start a kernel and run scenario steps")
    run.add_argument("--image", required=True)
    run.add_argument(
        "--krunner-volumes", default="{}", help="JSON mapping printed by 'prepare'"
    )
    run.add_argument("--steps", default="[]", help="inline JSON or a JSON file")
    run.add_argument(
        "--distro", help="base distro if the image has no ai.backend.base-distro label"
    )
    run.add_argument(
        "--port-range", default=f"{DEFAULT_PORT_RANGE[0]}-{DEFAULT_PORT_RANGE[1]}"
    )
    run.add_argument(
        "--kernel-uid", type=int, help="container.kernel-uid (default: agent default)"
    )
    run.add_argument(
        "--kernel-gid", type=int, help="container.kernel-gid (default: agent default)"
    )
    run.add_argument("--cpu", default="1")
    run.add_argument("--mem", default="1073741824", help="bytes")
    run.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument(
        "--bootstrap-script", help="session bootstrap script (written to bootstrap.sh)"
    )
    run.add_argument("--preopen-port", type=int, action="append", default=[])
    run.add_argument("--flush-timeout", type=float, default=2.0)
    run.add_argument(
        "--debug-kernel-runner", action="store_true", help="debug.kernel-runner"
    )
    run.add_argument(
        "--keep-container", action="store_true", help="skip destroy/cleanup"
    )
    return parser


def options_from_args(args: argparse.Namespace, work_root: Path) -> DriverOptions:
    low, _, high = args.port_range.partition("-")
    return DriverOptions(
        image=args.image,
        krunner_volumes=json.loads(args.krunner_volumes),
        work_root=work_root,
        port_range=(int(low), int(high)),
        distro=args.distro,
        kernel_uid=args.kernel_uid,
        kernel_gid=args.kernel_gid,
        cpu=args.cpu,
        mem=args.mem,
        environ=parse_env(args.env),
        bootstrap_script=args.bootstrap_script,
        preopen_ports=list(args.preopen_port),
        debug_kernel_runner=args.debug_kernel_runner,
        flush_timeout=args.flush_timeout,
        keep_container=args.keep_container,
    )


def configure_logging(verbosity: int) -> None:
    level = [logging.ERROR, logging.INFO, logging.DEBUG][min(verbosity, 2)]
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s"
    )


def _keep_stdout_for_the_result() -> TextIO:
    """Point fd 1 at stderr for everything the agent's code runs (its ``docker load`` prints
    "Loaded image: …" when the extractor image is new) and return a stream on the real stdout,
    which then carries only this driver's JSON document."""
    sys.stdout.flush()
    result = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return result


def main() -> int:
    args = build_parser().parse_args()
    configure_logging(args.verbose)
    out = _keep_stdout_for_the_result()
    with tempfile.TemporaryDirectory(
        prefix="bai-stock-agent-", ignore_cleanup_errors=True
    ) as tmp:
        work_root = Path(tmp)
        if args.command == "prepare":
            output = asyncio.run(cmd_prepare(work_root))
        else:
            output = asyncio.run(
                cmd_run(options_from_args(args, work_root), load_steps(args.steps))
            )
    json.dump(output, out, indent=2, default=str)
    out.write("\n")
    out.flush()
    return 0 if args.command == "prepare" or output["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
