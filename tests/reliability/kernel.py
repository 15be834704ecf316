"""Kernel containers for the reliability probes: **ours** (the krunner bundle with the checkout's
krunner overlaid) or **upstream** (the stock runner as a Backend.AI 26.9 agent deploys it:
PyPI ``backend.ai-krunner-static-gnu`` 4.4.0 + ``backend.ai-kernel`` 26.9.6, see
:mod:`imagekit.bundle.stock`), in the same image, started the way the agent starts kernels.

A probe must never hang on a runner that crashed or wedged: :meth:`ProbeKernel.alive` tells
"container exited" apart, every client call has a timeout, and :meth:`ProbeKernel.client` can
be asked for a fresh agent connection at any time (the old one is closed first: the runner's
PUSH socket round-robins between connected peers).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass, field
from pathlib import Path

from imagekit.harness.client import AgentClient, ChannelTimeout
from imagekit.harness.container import KernelContainer, start_kernel_container
from imagekit.localenv.checkout import REPO_ROOT

from .memory import ContainerMemory


#: the image both runners are measured in: upstream's python runtime needs a Jupyter kernelspec,
#: which images/python installs (see benchmarks/agent_compare.py)
REFERENCE_IMAGE = "bai-ref/python:latest"
REFERENCE_RUNTIME = ("python", "/opt/py/bin/python")
#: a lighter image for probes of our runner only (prepared by the localenv fixture)
TEST_IMAGE = "bai-test/python:latest"
TEST_RUNTIME = ("python", "/usr/bin/python3")


class Runner(str, enum.Enum):
    OURS = "ours"
    UPSTREAM = "upstream"


def runner_mount(runner: Runner, krunner_dir: Path | None = None):
    """The :class:`~imagekit.harness.krunner_mount.KrunnerMount` of *runner*.

    Ours is the bundle with the checkout's ``krunner/`` laid over it, or *krunner_dir* (another
    tree of the package, e.g. an older commit's ``git archive``: ddmin and bisecting use it).
    Upstream's is installed from PyPI on first use (``bai-imagekit krunner install --stock``)."""
    if runner is Runner.OURS:
        from imagekit.localenv.krunner_mounts import bundle_mount

        mount = bundle_mount(overlay_checkout=True)
        if krunner_dir is not None:
            overlays = [(Path(krunner_dir), target) if target.endswith("/krunner") else (host, target)
                        for host, target in mount.overlays]
            mount = dataclasses.replace(mount, overlays=overlays)
        return mount
    from imagekit.bundle.stock import (
        StockRunnerMissing,
        find_stock_runner,
        install_stock_runner,
        stock_mount,
    )

    try:
        stock = find_stock_runner()
    except StockRunnerMissing:
        stock = install_stock_runner()
    return stock_mount(stock)


@dataclass
class ProbeKernel:
    """One kernel container under probe."""

    runner: Runner
    kc: KernelContainer
    image: str
    memory: ContainerMemory = field(init=False)
    _client: AgentClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.memory = ContainerMemory(self.kc.container)

    @classmethod
    def start(cls, runner: Runner, image: str = REFERENCE_IMAGE, runtime: tuple[str, str] = REFERENCE_RUNTIME,
              *, mem_limit: str | None = None, ready_timeout: float = 90.0, krunner_dir: Path | None = None,
              **kwargs: object) -> ProbeKernel:
        resources = {"mem_limit": mem_limit} if mem_limit else None
        kc = start_kernel_container(image, runtime[0], runtime[1], krunner=runner_mount(runner, krunner_dir),
                                    name_prefix=f"bai-reliability-{runner.value}", resources=resources,
                                    **kwargs)  # type: ignore[arg-type]
        kernel = cls(runner, kc, image)
        try:
            kernel.client().wait_ready(timeout=ready_timeout)
        except (TimeoutError, ChannelTimeout):
            logs = kc.logs()
            kernel.stop()
            raise AssertionError(f"{runner.value}: the runner did not answer status in {ready_timeout:.0f} s; "
                                 f"logs:\n{logs[-3000:]}") from None
        return kernel

    # -- the agent's side ------------------------------------------------------------------

    def client(self, timeout: float = 30.0, fresh: bool = False) -> AgentClient:
        """The agent connection (one at a time); *fresh* reconnects, dropping anything pending."""
        if self._client is not None and not fresh:
            self._client.timeout = timeout
            return self._client
        self.close_client()
        self._client = AgentClient(self.kc.repl_in_port, self.kc.repl_out_port, timeout=timeout)
        return self._client

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the container ---------------------------------------------------------------------

    def alive(self) -> bool:
        """The container still runs (the runner is its main process: it exits with it)."""
        try:
            return self.kc.status() == "running"
        except Exception:  # noqa: BLE001 - removed or engine error: not running
            return False

    def exit_code(self) -> int | None:
        self.kc.container.reload()
        state = self.kc.container.attrs.get("State") or {}
        return None if state.get("Running") else state.get("ExitCode")

    def exec(self, cmd: list[str] | str, user: str | None = None) -> tuple[int, str]:
        return self.kc.exec_run(cmd, user=user)

    def processes(self) -> list[tuple[int, int, str, str]]:
        """``(pid, uid, state, cmdline)`` of every process in the container, read from the host's
        /proc (pids are host pids; works whatever the image lacks)."""
        out = []
        for pid in self._container_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            uid = int(fields.get("Uid", "0").split()[0])
            out.append((pid, uid, fields.get("State", "?")[:1], cmdline.strip()))
        return out

    def _container_pids(self) -> list[int]:
        d = self.memory.dir
        procs = d / "cgroup.procs" if d is not None else None
        if procs is not None and procs.exists():
            return [int(p) for p in procs.read_text().split()]
        top = self.kc.container.top(ps_args="-o pid")
        return [int(row[0]) for row in top.get("Processes") or []]

    def runner_pid(self) -> int | None:
        """The host pid of the runner process (ours: ``bai-krunner``; upstream: ``ai.backend.kernel``)."""
        procs = self.processes()
        for pid, _, _, cmd in procs:
            if cmd == "bai-krunner":
                return pid
        for pid, _, _, cmd in procs:  # upstream: python -m ai.backend.kernel (not the init or entrypoint that started it)
            if "-m ai.backend.kernel" in cmd and "docker-init" not in cmd and "entrypoint" not in cmd:
                return pid
        return None

    def logs(self) -> str:
        return self.kc.logs()

    def stop(self) -> None:
        self.close_client()
        self.kc.stop()

    def __enter__(self) -> ProbeKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(predicate, timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until *predicate* held, or None if it did not within *timeout*."""
    t0 = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - t0
        if time.monotonic() - t0 >= timeout:
            return None
        time.sleep(interval)
