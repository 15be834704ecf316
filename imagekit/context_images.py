"""Build a Dockerfile context on top of a base image into a local image, cached by a content hash label.

:func:`context_hash` (every file of a directory, mtime-independent) also serves as the cache key of
other derived artefacts (the krunner bundle's inputs hash).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from .console import progress
from .docker_jobs import DockerJobError
from .locks import file_lock

CONTEXT_HASH_LABEL = "ai.backend.imagekit.context-hash"
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: never part of a context: VCS data and tool caches (a checkout has them, an installed package does not)
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".pytest_cache", ".ruff_cache", ".mypy_cache"})


class ImageBuildError(DockerJobError):
    """``docker build`` failed; carries the output of the failing step."""

    def __init__(self, tag: str, message: str, step_output: list[str]) -> None:
        self.tag = tag
        self.message = message
        self.step_output = step_output
        shown = "\n".join(f"    {line}" for line in step_output[-40:])
        super().__init__(f"building {tag} failed: {message}" + (f"\n  failing step output:\n{shown}" if shown else ""))


def _iter_context_files(context_dir: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(context_dir, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            yield Path(dirpath) / name


def context_hash(context_dir: Path, extra: Mapping[str, str] | None = None) -> str:
    """SHA-256 over every file of *context_dir* (path, exec bit, content) plus *extra* items.

    Stable across runs, independent of mtimes and of the directory's location.
    """
    context_dir = Path(context_dir)
    if not context_dir.is_dir():
        raise DockerJobError(f"build context {context_dir} is not a directory")
    h = hashlib.sha256()
    for path in _iter_context_files(context_dir):
        rel = path.relative_to(context_dir).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            kind, payload = b"L", os.readlink(path).encode()
        else:
            kind, payload = (b"X" if st.st_mode & 0o111 else b"F"), path.read_bytes()
        h.update(kind + rel.encode() + b"\0" + str(len(payload)).encode() + b"\0" + payload)
    for key in sorted(extra or {}):
        h.update(b"E" + key.encode() + b"=" + (extra or {})[key].encode() + b"\0")
    return h.hexdigest()


def _image_label(client: docker.DockerClient, tag: str, label: str) -> tuple[str | None, str | None]:
    """Return (image id, label value) for *tag*, or (None, None) if the image is absent."""
    try:
        image = client.images.get(tag)
    except ImageNotFound:
        return None, None
    return image.id, (image.labels or {}).get(label)


def _run_build(client: docker.DockerClient, context_dir: Path, tag: str, buildargs: dict[str, str], labels: dict[str, str]) -> str:
    """Run the build, streaming progress; return the new image id."""
    step_output: list[str] = []
    pending = ""
    image_id: str | None = None
    error: str | None = None

    def emit(line: str) -> None:
        nonlocal step_output
        line = _ANSI_RE.sub("", line)
        if not line.strip():
            return
        if line.startswith("Step "):
            step_output = []
        step_output.append(line)
        progress(f"build {tag}: {line}")

    try:
        stream = client.api.build(
            path=str(context_dir), tag=tag, buildargs=buildargs, labels=labels,
            rm=True, forcerm=True, pull=False, decode=True,
        )
        for chunk in stream:
            if not isinstance(chunk, dict):
                continue
            if "stream" in chunk:
                pending += str(chunk["stream"])
                *lines, pending = pending.split("\n")
                for line in lines:
                    if line.strip():
                        emit(line.rstrip())
            if "status" in chunk and chunk["status"]:
                emit(str(chunk["status"]))
            if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                image_id = str(chunk["aux"]["ID"])
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                error = str(chunk.get("error") or detail.get("message") or chunk)
    except APIError as e:
        raise ImageBuildError(tag, str(e.explanation or e), step_output) from e
    except DockerException as e:
        raise ImageBuildError(tag, str(e), step_output) from e
    if pending.strip():
        emit(pending.rstrip())
    if error is not None:
        raise ImageBuildError(tag, error.strip(), step_output)
    if image_id is None:
        try:
            image_id = client.images.get(tag).id
        except ImageNotFound as e:
            raise ImageBuildError(tag, "build finished but the image is missing", step_output) from e
    return image_id


def ensure_image(
    context_dir: Path,
    tag: str,
    base_image: str,
    *,
    client: docker.DockerClient,
    buildargs: Mapping[str, str] | None = None,
) -> str:
    """Build *context_dir* as *tag* with ``--build-arg BASE_IMAGE=<base_image>`` unless up to date.

    The image is rebuilt only when the context hash (every file of the context,
    the build args and the base image's id) differs from the
    ``ai.backend.imagekit.context-hash`` label of the existing *tag*. Returns *tag*.
    """
    context_dir = Path(context_dir)
    try:
        base_id = client.images.get(base_image).id
    except ImageNotFound as e:
        raise DockerJobError(f"base image {base_image} for {tag} is not on the engine") from e
    args = {"BASE_IMAGE": base_image, **(buildargs or {})}
    extra = {f"arg:{k}": v for k, v in args.items()} | {"base-image-id": base_id}
    wanted = context_hash(context_dir, extra)
    old_id, have = _image_label(client, tag, CONTEXT_HASH_LABEL)
    if have == wanted:
        return tag
    with file_lock(f"image-{tag}"):
        old_id, have = _image_label(client, tag, CONTEXT_HASH_LABEL)
        if have == wanted:
            return tag
        reason = "missing" if old_id is None else "context changed"
        progress(f"building {tag} from {context_dir} ({reason})…")
        started = time.monotonic()
        new_id = _run_build(client, context_dir, tag, args, {CONTEXT_HASH_LABEL: wanted})
        _, got = _image_label(client, tag, CONTEXT_HASH_LABEL)
        if got != wanted:
            raise DockerJobError(f"built {tag} but its {CONTEXT_HASH_LABEL} label is {got!r}, expected {wanted!r}")
        if old_id is not None and old_id != new_id:
            try:  # drop the now-untagged previous build; it may still be in use
                client.images.remove(old_id)
            except DockerException:
                pass
        progress(f"{tag} built in {time.monotonic() - started:.0f}s")
    return tag
