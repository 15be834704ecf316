"""An :class:`~imagekit.kernel_inputs.ImageFS` over an image's layer blobs, without a Docker engine.

The layers are downloaded (compressed, digest-checked) into a temporary directory and indexed
once, in order, the way an overlay filesystem stacks them: a later entry replaces an earlier one,
``.wh.NAME`` removes ``NAME`` of the layers below and ``.wh..wh..opq`` empties its directory of
them. The index holds metadata only; a file's bytes are read from its layer blob on disk when a
rule asks for them (and cached). Symlinks are resolved inside the image like
:class:`imagekit.imagefs.DockerImageFS` does, so both give the rules the same answers.
"""

from __future__ import annotations

import gzip
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import EnvironmentProblem
from ..image_paths import SymlinkResolver
from ..image_paths import normalize as _norm
from .client import RegistryClient
from .rescan import LayerInfo

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(slots=True)
class _Entry:
    kind: str  # file, dir, symlink, other
    mode: int
    uid: int
    gid: int
    size: int
    linkname: str = ""
    layer: int = -1  # where the content is (files)
    offset: int = 0
    children: set[str] | None = None  # names in a directory (None for everything else)


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg() or member.islnk():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    return "other"


class LayersFS(SymlinkResolver):
    """Read-only view of the stacked layers in *blobs* (paths of the downloaded blobs, lowest first)."""

    def __init__(self, blobs: list[Path]) -> None:
        self._blobs = blobs
        self._index: dict[str, _Entry] = {"/": _Entry("dir", 0o755, 0, 0, 0, children=set())}
        self._data: dict[str, bytes] = {}
        self._readers: dict[int, tuple[BinaryIO, BinaryIO]] = {}
        for number, blob in enumerate(blobs):
            self._add_layer(number, blob)

    # -- building the index ----------------------------------------------------------------------

    def _open_blob(self, number: int) -> tuple[BinaryIO, BinaryIO]:
        """(the raw file, the decompressed stream) of layer *number*."""
        raw = self._blobs[number].open("rb")
        head = raw.read(4)
        raw.seek(0)
        if head.startswith(_ZSTD_MAGIC):
            raw.close()
            raise EnvironmentProblem("a layer is zstd-compressed, which this Python cannot read; "
                                     "validate with --labels-only, or push the image with gzip layers")
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if head.startswith(_GZIP_MAGIC) else raw  # type: ignore[assignment]
        return raw, stream

    def _remove(self, path: str) -> None:
        entry = self._index.pop(path, None)
        if entry is None:
            return
        for child in list(entry.children or ()):
            self._remove(posixpath.join(path, child))
        parent = self._index.get(posixpath.dirname(path))
        if parent is not None and parent.children is not None:
            parent.children.discard(posixpath.basename(path))

    def _ensure_dir(self, path: str) -> _Entry:
        entry = self._index.get(path)
        if entry is not None and entry.kind == "dir":
            return entry
        if entry is not None:
            self._remove(path)
        parent = self._ensure_dir(posixpath.dirname(path))
        entry = _Entry("dir", 0o755, 0, 0, 0, children=set())
        self._index[path] = entry
        parent.children.add(posixpath.basename(path))  # type: ignore[union-attr]
        return entry

    def _add_layer(self, number: int, blob: Path) -> None:
        raw, stream = self._open_blob(number)
        members: list[tuple[str, tarfile.TarInfo]] = []
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    members.append((_norm(member.name), member))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise EnvironmentProblem(f"layer {number + 1} ({blob.name}) is not a readable tar archive: {exc}") from exc
        finally:
            stream.close()
            raw.close()
        lower = set(self._index)  # whiteouts only hide what the layers below hold
        for path, _member in members:
            base = posixpath.basename(path)
            if base == OPAQUE:
                directory = self._index.get(posixpath.dirname(path))
                if directory is not None:
                    for child in list(directory.children or ()):
                        if posixpath.join(posixpath.dirname(path), child) in lower:
                            self._remove(posixpath.join(posixpath.dirname(path), child))
            elif base.startswith(WHITEOUT):
                target = posixpath.join(posixpath.dirname(path), base[len(WHITEOUT):])
                if target in lower:
                    self._remove(target)
        for path, member in members:
            base = posixpath.basename(path)
            if base.startswith(WHITEOUT) or path == "/":
                continue
            self._add(number, path, member)

    def _add(self, number: int, path: str, member: tarfile.TarInfo) -> None:
        kind = _kind(member)
        mode = member.mode & 0o7777
        existing = self._index.get(path)
        if kind == "dir":
            if existing is not None and existing.kind == "dir":
                existing.mode, existing.uid, existing.gid = mode, member.uid, member.gid
                return
            if existing is not None:
                self._remove(path)
        elif existing is not None:
            self._remove(path)
        parent = self._ensure_dir(posixpath.dirname(path))
        entry = _Entry(kind, mode, member.uid, member.gid, member.size, member.linkname,
                       children=set() if kind == "dir" else None)
        if member.isreg():
            entry.layer, entry.offset = number, member.offset_data
        elif member.islnk():
            target = self._index.get(_norm(member.linkname))
            if target is not None and target.kind == "file":
                entry.layer, entry.offset, entry.size = target.layer, target.offset, target.size
            entry.linkname = ""
        self._index[path] = entry
        parent.children.add(posixpath.basename(path))  # type: ignore[union-attr]

    # -- the ImageFS protocol (realpath/stat come from SymlinkResolver) ---------------------------

    def _lstat(self, path: str) -> _Entry | None:
        return self._index.get(path)

    def listdir(self, path: str) -> list[str] | None:
        real = self.realpath(path)
        if real is None or self._index[real].kind != "dir":
            return None
        return sorted(self._index[real].children or ())

    def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes | None:
        real = self.realpath(path)
        if real is None or self._index[real].kind != "file":
            return None
        entry = self._index[real]
        want = min(limit, entry.size)
        cached = self._data.get(real)
        if cached is not None and len(cached) >= want:
            return cached[:want]
        if entry.layer < 0 or want == 0:
            return b""
        data = self._read_at(entry.layer, entry.offset, want)
        self._data[real] = data
        return data

    def _read_at(self, layer: int, offset: int, size: int) -> bytes:
        pair = self._readers.get(layer)
        if pair is None or pair[1].tell() > offset:  # gzip cannot seek backwards cheaply: start again
            if pair is not None:
                pair[1].close()
                pair[0].close()
            pair = self._open_blob(layer)
            self._readers[layer] = pair
        stream = pair[1]
        stream.seek(offset)
        return stream.read(size)

    def close(self) -> None:
        for raw, stream in self._readers.values():
            stream.close()
            raw.close()
        self._readers.clear()


@contextmanager
def open_layers_fs(client: RegistryClient, repository: str, layers: list[LayerInfo],
                   progress: Callable[[str], None] | None = None,
                   workdir: Path | None = None) -> Iterator[LayersFS]:
    """Download *layers* of *repository* into a temporary directory and serve them as one filesystem;
    the directory is removed when the block exits."""
    own = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="bai-imagekit-layers-")) if own else workdir
    assert directory is not None
    fs: LayersFS | None = None
    try:
        blobs: list[Path] = []
        total = sum(layer.size for layer in layers)
        done = 0
        for number, layer in enumerate(layers, 1):
            dest = directory / layer.digest.replace(":", "-")
            if not dest.exists():
                if progress is not None:
                    progress(f"downloading layer {number}/{len(layers)} ({_mib(layer.size)}; "
                             f"{_mib(done)} of {_mib(total)} so far)")
                partial = dest.with_suffix(".part")
                client.download_blob(repository, layer.digest, partial)
                partial.rename(dest)
            done += layer.size
            blobs.append(dest)
        fs = LayersFS(blobs)
        yield fs
    finally:
        if fs is not None:
            fs.close()
        if own:
            shutil.rmtree(directory, ignore_errors=True)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
