"""What a validation looks at, whatever the target was (image, Dockerfile, kernel dir, label dump).

Front ends (:mod:`imagekit.targets`) fill a :class:`KernelInputs`; the rules
(:mod:`imagekit.rules`) only ever read one, so every target kind gets the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .findings import Finding, Location
from .runner_target import DEFAULT_RUNNER, RunnerTarget, runner_from_labels


class ImageFS(Protocol):
    """Read-only view of an image's filesystem (no container is started to read it)."""

    def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes | None:
        """The file's content (at most *limit* bytes; symlinks followed), or None if it does not exist."""

    def stat(self, path: str) -> "FileInfo | None":
        """Type and mode of *path* (symlinks followed), or None if it does not exist."""

    def listdir(self, path: str) -> list[str] | None:
        """Names in a directory, or None if it is not a directory."""


@dataclass(frozen=True)
class FileInfo:
    kind: str  # "file", "dir", "symlink" (dangling), "other"
    mode: int  # permission bits, e.g. 0o755
    uid: int = 0
    gid: int = 0
    size: int = 0

    @property
    def executable(self) -> bool:
        return self.kind == "file" and bool(self.mode & 0o111)


@dataclass(frozen=True)
class ServiceDefSource:
    """One service-def file as found in the target: its name (file stem), where it is, its text."""

    name: str
    location: Location
    text: str | None  # None: exists but unreadable (the reason in *error*)
    error: str | None = None
    host_path: Path | None = None


@dataclass
class KernelInputs:
    """Everything the rules check. Only ``labels`` is always present."""

    target: str  # what the user named (image ref, path)
    labels: dict[str, str]
    # where each label was set (Dockerfile line, spec file line); missing keys -> ``default_location``
    label_locations: dict[str, Location] = field(default_factory=dict)
    default_location: Location | None = None
    # service-def files of the target (None: the target cannot tell, e.g. a bare label dump)
    service_defs: dict[str, ServiceDefSource] | None = None
    # the jail policy file (None: not part of the target)
    policy_text: str | None = None
    policy_location: Location | None = None
    # the image's filesystem, for content checks (only for image targets)
    image_fs: ImageFS | None = None
    # rule IDs suppressed inline in *suppression_file*, with the lines each applies to (None = whole target)
    suppressions: dict[str, list[int | None]] = field(default_factory=dict)
    suppression_file: str | None = None
    # the kernel runner the image is checked for (``--runner``); None: the image's own choice
    runner: RunnerTarget | None = None

    @property
    def target_runner(self) -> RunnerTarget:
        """``--runner`` if given, else the runner the image was built for (its ``ai.backend.imagekit.runner``
        label, from ``runner`` in kernel.toml), else the stock runner."""
        return self.runner or runner_from_labels(self.labels) or DEFAULT_RUNNER

    def location_of(self, label: str) -> Location | None:
        return self.label_locations.get(label, self.default_location)

    def is_suppressed(self, finding: "Finding") -> bool:
        """An inline ``# bai-imagekit ignore=RULE`` covers *finding*: the whole target, or the
        finding's line in the file the suppression was written in (never the same line number of
        another file)."""
        lines = self.suppressions.get(finding.rule)
        if not lines:
            return False
        if None in lines:
            return True
        loc = finding.location
        return (
            loc is not None
            and loc.line in lines
            and (self.suppression_file is None or loc.file == self.suppression_file)
        )
