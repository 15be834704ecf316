"""A kernel container's memory, read from the host: its cgroup (v1 or v2), ``docker stats`` as a fallback.

The container's cgroup is found through its init process: ``/proc/<State.Pid>/cgroup`` names the
memory cgroup, which lives under ``/sys/fs/cgroup/memory/<path>`` (v1, e.g. ``/docker/<id>`` with
the cgroupfs driver) or ``/sys/fs/cgroup/<path>`` (v2, e.g. ``system.slice/docker-<id>.scope``).

Figures are *anon* memory (v1 ``total_rss``, v2 ``anon``) besides the full usage: the page cache
the container's file reads leave behind is charged to it and makes "back to idle" noisy, while a
runner that leaks or keeps a backlog shows up in anonymous memory.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class MemorySample:
    usage: int  # bytes charged to the cgroup (page cache included)
    anon: int  # anonymous memory (what processes allocated)


class MemoryUnavailable(RuntimeError):
    """Neither the container's cgroup nor the engine's stats could be read."""


class ContainerMemory:
    """Reads one container's memory; ``sample()`` is cheap (two small sysfs reads)."""

    def __init__(self, container) -> None:
        self.container = container
        container.reload()
        self.pid = int(container.attrs["State"]["Pid"])
        self.kind, self.dir = self._locate()

    def _locate(self) -> tuple[str, Path | None]:
        try:
            lines = Path(f"/proc/{self.pid}/cgroup").read_text().splitlines()
        except OSError:
            return "stats", None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                d = CGROUP_ROOT / "memory" / path.lstrip("/")
                if (d / "memory.usage_in_bytes").exists():
                    return "v1", d
        for line in lines:
            if line.startswith("0::"):
                d = CGROUP_ROOT / line[3:].lstrip("/")
                if (d / "memory.current").exists():
                    return "v2", d
        return "stats", None

    @property
    def source(self) -> str:
        return f"cgroup {self.kind} {self.dir}" if self.dir else "docker stats"

    def _stat(self) -> dict[str, int]:
        assert self.dir is not None
        out = {}
        for line in (self.dir / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.isdigit():
                out[key] = int(value)
        return out

    def sample(self) -> MemorySample:
        try:
            if self.kind == "v1":
                assert self.dir is not None
                usage = int((self.dir / "memory.usage_in_bytes").read_text())
                stat = self._stat()
                return MemorySample(usage, stat.get("total_rss", stat.get("rss", 0)))
            if self.kind == "v2":
                assert self.dir is not None
                usage = int((self.dir / "memory.current").read_text())
                return MemorySample(usage, self._stat().get("anon", 0))
        except OSError as exc:  # the container exited: its cgroup is gone
            raise MemoryUnavailable(f"{self.source}: {exc}") from exc
        try:
            stats = self.container.stats(stream=False)["memory_stats"]
        except Exception as exc:  # noqa: BLE001 - the engine's API, any failure means "not available"
            raise MemoryUnavailable(f"docker stats: {exc}") from exc
        detail = stats.get("stats") or {}
        return MemorySample(int(stats.get("usage", 0)), int(detail.get("anon", detail.get("total_rss", 0))))

    def idle(self, settle: float = 1.0, samples: int = 5) -> MemorySample:
        """The median of a few samples after *settle* seconds of quiet."""
        time.sleep(settle)
        got = []
        for _ in range(samples):
            got.append(self.sample())
            time.sleep(0.1)
        got.sort(key=lambda s: s.anon)
        return got[len(got) // 2]

    def watch(self, interval: float = 0.05) -> PeakWatcher:
        return PeakWatcher(self, interval)

    def back_to(self, baseline: MemorySample, within: float = 0.10, slack: int = 8 << 20,
                timeout: float = 20.0) -> tuple[MemorySample, float | None]:
        """Wait until anon memory is within *within* (and at least *slack* bytes) of *baseline*.

        Returns the last sample and the seconds it took (None: not back within *timeout*)."""
        bound = baseline.anon + max(int(baseline.anon * within), slack)
        t0 = time.monotonic()
        while True:
            s = self.sample()
            if s.anon <= bound:
                return s, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                return s, None
            time.sleep(0.25)


@dataclass
class PeakWatcher:
    """Samples in a background thread while a probe runs; ``peak`` is the highest anon sample."""

    memory: ContainerMemory
    interval: float = 0.05
    peak: MemorySample = field(default_factory=lambda: MemorySample(0, 0))
    samples: int = 0
    error: str = ""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-peak", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                s = self.memory.sample()
            except MemoryUnavailable as exc:
                self.error = str(exc)
                return
            self.samples += 1
            if s.anon > self.peak.anon:
                self.peak = MemorySample(max(s.usage, self.peak.usage), s.anon)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def mib(n: int | float) -> float:
    return round(n / (1 << 20), 1)
