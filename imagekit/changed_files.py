"""Changed files → what to validate (``validate --changed``, the pre-commit hook).

A changed file belongs to the nearest enclosing kernel directory – one with ``kernel.toml`` or a
``Dockerfile``/``Containerfile`` – looked for up to the working directory; that directory is
validated once however many of its files changed. A Dockerfile outside any kernel directory (e.g.
``images/foo.Dockerfile``) is validated alone; anything else outside one is skipped.
"""

from __future__ import annotations

from pathlib import Path

from .findings import display_path
from .targets import DOCKERFILE_NAMES, SPEC_NAME


def _is_kernel_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in (SPEC_NAME, *DOCKERFILE_NAMES))


def _is_dockerfile(path: Path) -> bool:
    name = path.name
    return name.startswith(DOCKERFILE_NAMES) or name.lower().endswith((".dockerfile", ".containerfile"))


def _kernel_dir_of(path: Path, root: Path) -> Path | None:
    start = path if path.is_dir() else path.parent
    for directory in (start, *start.parents):
        if _is_kernel_dir(directory):
            return directory
        if directory == root or root not in directory.parents:
            return None
    return None


def targets_for_changed(files: list[str], root: Path | None = None) -> tuple[list[str], list[str]]:
    """(targets to validate, in first-seen order; files that belong to no kernel directory).

    A deleted file still maps to its directory (pre-commit passes only existing files; git may not)."""
    base = (root or Path.cwd()).resolve()
    targets: list[str] = []
    skipped: list[str] = []
    for name in files:
        path = (base / name).resolve() if not Path(name).is_absolute() else Path(name).resolve()
        kernel = _kernel_dir_of(path, base)
        if kernel is not None:
            target = display_path(kernel) or "."
        elif path.is_file() and _is_dockerfile(path):
            target = display_path(path)
        else:
            skipped.append(name)
            continue
        if target not in targets:
            targets.append(target)
    return targets, skipped
