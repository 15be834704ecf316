"""Path resolution inside an image's filesystem, shared by every read-only image view.

An image view (:class:`imagekit.imagefs.DockerImageFS` through the engine,
:class:`imagekit.registry.layers_fs.LayersFS` over registry blobs) only says what one path *is*
(:meth:`SymlinkResolver._lstat`, symlinks not followed).  This base class turns that into the
``ImageFS`` answers: symlinks resolved inside the image (absolute targets from the image root,
relative ones from the link's real directory, at most :data:`MAX_SYMLINKS` hops), ``realpath`` and
``stat``; a dangling link is reported as itself, a loop as a ``symlink``.
"""

from __future__ import annotations

import posixpath
from typing import Protocol

from .kernel_inputs import FileInfo

MAX_SYMLINKS = 40  # like Linux's ELOOP limit


class SymlinkLoop(Exception):
    pass


class PathEntry(Protocol):
    """What an image view knows of one path (symlinks not followed)."""

    kind: str  # file, dir, symlink, other
    mode: int
    uid: int
    gid: int
    size: int
    linkname: str


def normalize(path: str) -> str:
    """An absolute, normalised path (``./x`` and ``x`` become ``/x``)."""
    while path.startswith("./"):
        path = path[2:]
    return posixpath.normpath("/" + path.lstrip("/")).replace("//", "/")


class SymlinkResolver:
    """``realpath``/``stat`` over :meth:`_lstat`; subclasses add ``read_bytes`` and ``listdir``."""

    def _lstat(self, path: str) -> PathEntry | None:  # pragma: no cover - the subclasses' job
        raise NotImplementedError

    def _resolve(self, path: str, budget: list[int]) -> tuple[str, PathEntry | None]:
        """The real path of *path* and its entry (a "symlink" entry if dangling, None if absent)."""
        path = normalize(path)
        parent, name = posixpath.split(path)
        if name:  # resolve the directory part first, so relative targets and ".." are correct
            real_parent, parent_entry = self._resolve(parent, budget)
            if parent_entry is None or parent_entry.kind != "dir":
                return path, None
            path = posixpath.join(real_parent, name)
        entry = self._lstat(path)
        while entry is not None and entry.kind == "symlink":
            budget[0] -= 1
            if budget[0] < 0:
                raise SymlinkLoop(path)
            base = "/" if entry.linkname.startswith("/") else posixpath.dirname(path)
            resolved, target = self._resolve(posixpath.join(base, entry.linkname), budget)
            if target is None:
                return path, entry  # dangling: report the link itself
            path, entry = resolved, target
        return path, entry

    def realpath(self, path: str) -> str | None:
        """The path with every symlink resolved, or None if it does not exist (or loops)."""
        try:
            real, entry = self._resolve(path, [MAX_SYMLINKS])
        except SymlinkLoop:
            return None
        return real if entry is not None and entry.kind != "symlink" else None

    def stat(self, path: str) -> FileInfo | None:
        try:
            _real, entry = self._resolve(path, [MAX_SYMLINKS])
        except SymlinkLoop:
            return FileInfo(kind="symlink", mode=0o777)
        if entry is None:
            return None
        return FileInfo(kind=entry.kind, mode=entry.mode, uid=entry.uid, gid=entry.gid, size=entry.size)
