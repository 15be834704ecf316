"""Read an image's files through Docker without running anything in it.

:func:`open_image_fs` creates (never starts) a container from the image and
reads paths with ``container.get_archive`` (one tar stream per path). Symlinks
are resolved here, inside the image: absolute targets from the image root,
relative ones from the link's real directory, at most :data:`MAX_SYMLINKS`
hops. Results are cached; the container is removed on exit, also on error.

Cost: a directory is archived with its whole subtree, so ``listdir`` and a
``stat`` of a directory read only what they need and then drop the stream.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import docker
from docker.errors import APIError, ImageNotFound, NotFound

from .errors import EnvironmentProblem
from .image_paths import MAX_SYMLINKS, SymlinkLoop, SymlinkResolver  # noqa: F401 (re-exported)

LABEL = "ai.backend.imagekit.imagefs"  # marks the scratch containers this module creates


@dataclass(frozen=True)
class _Entry:
    """One path as stored in the image (symlinks not followed)."""

    kind: str  # file, dir, symlink, other
    mode: int
    uid: int
    gid: int
    size: int
    linkname: str = ""


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    return "other"


class _ChunkReader:
    """A file object over docker-py's chunk generator (for ``tarfile`` stream mode)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class DockerImageFS(SymlinkResolver):
    """:class:`imagekit.kernel_inputs.ImageFS` over a created (not started) container."""

    def __init__(self, container) -> None:  # docker.models.containers.Container
        self._container = container
        self._entries: dict[str, _Entry | None] = {"/": _Entry("dir", 0o755, 0, 0, 0)}
        self._data: dict[str, tuple[bytes, bool]] = {}  # real path -> (content, complete)
        self._listings: dict[str, list[str]] = {}

    # -- archive access ------------------------------------------------------------------------

    @contextmanager
    def _archive(self, path: str) -> Iterator[tarfile.TarFile | None]:
        try:
            chunks, _stat = self._container.get_archive(path, chunk_size=64 * 1024)
        except NotFound:
            yield None
            return
        except APIError as exc:
            text = str(exc).lower()
            if "too many links" in text:  # the engine resolves the path in scope first and hits the loop
                raise SymlinkLoop(path) from exc
            if "not a directory" in text:  # a path below a regular file
                yield None
                return
            raise
        reader = _ChunkReader(chunks)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                yield tar
        finally:
            reader.close()

    def _lstat(self, path: str) -> _Entry | None:
        if path not in self._entries:
            with self._archive(path) as tar:
                member = next(iter(tar), None) if tar is not None else None
                self._entries[path] = None if member is None else _Entry(
                    _kind(member), member.mode & 0o7777, member.uid, member.gid, member.size, member.linkname
                )  # fmt: skip
        return self._entries[path]

    # -- the ImageFS protocol (realpath/stat come from SymlinkResolver) ---------------------------

    def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes | None:
        real = self.realpath(path)
        if real is None or self._entries.get(real) is None or self._entries[real].kind != "file":
            return None
        cached = self._data.get(real)
        if cached is not None and (cached[1] or len(cached[0]) >= limit):
            return cached[0][:limit]
        data = b""
        with self._archive(real) as tar:
            member = next(iter(tar), None) if tar is not None else None
            if member is not None and member.isreg():
                handle = tar.extractfile(member)
                data = handle.read(limit) if handle is not None else b""
        self._data[real] = (data, len(data) >= self._entries[real].size)
        return data

    def listdir(self, path: str) -> list[str] | None:
        real = self.realpath(path)
        if real is None or self._entries[real].kind != "dir":
            return None
        if real not in self._listings:
            names: list[str] = []
            with self._archive(real) as tar:
                for member in tar or ():
                    parts = member.name.strip("/").split("/")
                    if len(parts) == 2:
                        names.append(parts[1])
                        child = posixpath.join(real, parts[1])
                        self._entries.setdefault(child, _Entry(
                            _kind(member), member.mode & 0o7777, member.uid, member.gid, member.size, member.linkname
                        ))  # fmt: skip
            self._listings[real] = sorted(names)
        return list(self._listings[real])



@contextmanager
def open_image_fs(client: docker.DockerClient, image_ref: str) -> Iterator[DockerImageFS]:
    """A :class:`DockerImageFS` for *image_ref* (which must exist locally); the scratch container
    is created without starting it and removed when the block exits."""
    try:
        client.images.get(image_ref)
    except ImageNotFound as exc:
        raise EnvironmentProblem(f"image {image_ref} is not present locally (pull or build it first)") from exc
    container = client.containers.create(
        image_ref,
        entrypoint=["/.imagekit-never-started"],
        command=[],
        labels={LABEL: "1"},
        network_disabled=True,
    )
    try:
        yield DockerImageFS(container)
    finally:
        try:
            container.remove(force=True, v=True)
        except NotFound:
            pass
