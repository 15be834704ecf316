"""The bundle manifest: what a krunner volume must contain, and checking a volume against it.

The manifest is JSON, written by the builder as ``MANIFEST.json`` (first member of
the tarball, also next to it as ``krunner-env.<variant>.<arch>.manifest.json``)::

    {"format": 1, "variant": "static-gnu", "arch": "x86_64", "python": "3.11",
     "agent_python": "3.13", "volume_version": 1234567890,
     "version": "<krunner version>+<inputs hash>", "inputs_hash": "…", "prefix": "/opt/backend.ai",
     "libraries": [...],
     "files": [{"path": "bin/python", "type": "file", "mode": "0755", "size": 17000, "sha256": "…"},
               {"path": "bin/python3", "type": "symlink", "target": "python"},
               {"path": "lib", "type": "dir", "mode": "0755"}, …]}

``files`` lists everything except ``MANIFEST.json`` itself and ``VERSION`` (written
by the installer, last).  :func:`parse_listing` reads what :data:`LISTING_SCRIPT`
prints inside a helper container; :func:`verify` compares the two.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_MEMBER = "MANIFEST.json"
VERSION_FILE = "VERSION"
UNLISTED = frozenset({MANIFEST_MEMBER, VERSION_FILE})

#: run with ``sh -c`` in a helper container, the volume mounted at /vol; GNU find + coreutils
LISTING_SCRIPT = r"""set -e
cd /vol
find . -mindepth 1 -printf 'E\t%y\t%m\t%s\t%P\t%l\n'
find . -mindepth 1 -type f -print0 | xargs -0r sha256sum | sed 's/^/H\t/'
"""


class ManifestError(ValueError):
    """The manifest is missing or malformed."""


@dataclass(frozen=True)
class Entry:
    path: str
    type: str  # "file" | "dir" | "symlink"
    mode: str | None = None  # "0755" (files and dirs)
    size: int | None = None
    sha256: str | None = None
    target: str | None = None  # symlinks

    @classmethod
    def from_json(cls, raw: dict) -> Entry:
        try:
            kind = raw["type"]
            if kind not in ("file", "dir", "symlink"):
                raise ManifestError(f"{raw.get('path')!r}: unknown type {kind!r}")
            path = str(raw["path"])
            if path.startswith("/") or ".." in path.split("/"):
                raise ManifestError(f"{path!r}: path must be relative and inside the bundle")
            return cls(path=path, type=kind, mode=raw.get("mode"), size=raw.get("size"),
                       sha256=raw.get("sha256"), target=raw.get("target"))
        except KeyError as exc:
            raise ManifestError(f"file entry without {exc}: {raw!r}") from None


@dataclass(frozen=True)
class Manifest:
    format: int
    variant: str
    arch: str
    python: str
    version: str
    inputs_hash: str
    prefix: str
    files: tuple[Entry, ...]
    libraries: tuple[str, ...] = ()
    #: N of the volume name and the content of its VERSION file (see imagekit.bundle.volume_name)
    volume_version: int = 0
    #: the X.Y a stock agent is told; it mounts its runner under lib/pythonX.Y (never ours)
    agent_python: str = ""
    text: str = field(default="", repr=False, compare=False)

    @classmethod
    def from_text(cls, text: str) -> Manifest:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"manifest is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ManifestError("manifest must be a JSON object")
        try:
            return cls(
                format=int(raw["format"]), variant=str(raw["variant"]), arch=str(raw["arch"]),
                python=str(raw["python"]), version=str(raw["version"]), inputs_hash=str(raw["inputs_hash"]),
                prefix=str(raw["prefix"]), files=tuple(Entry.from_json(e) for e in raw["files"]),
                libraries=tuple(raw.get("libraries", ())), text=text,
                volume_version=int(raw["volume_version"]), agent_python=str(raw["agent_python"]),
            )
        except KeyError as exc:
            raise ManifestError(f"manifest lacks {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"malformed manifest: {exc}") from None

    @classmethod
    def from_file(cls, path: Path) -> Manifest:
        try:
            return cls.from_text(Path(path).read_text())
        except OSError as exc:
            raise ManifestError(f"cannot read {path}: {exc}") from None

    @classmethod
    def from_tarball(cls, tarball: Path) -> Manifest:
        """The ``MANIFEST.json`` member (the first one) of a ``.tar.xz`` bundle."""
        try:
            with tarfile.open(tarball, "r:xz") as tar:
                member = tar.next()
                if member is None or member.name.lstrip("./") != MANIFEST_MEMBER:
                    raise ManifestError(f"{tarball}: first member is not {MANIFEST_MEMBER}")
                fh = tar.extractfile(member)
                if fh is None:
                    raise ManifestError(f"{tarball}: {MANIFEST_MEMBER} is not a file")
                return cls.from_text(fh.read().decode())
        except (OSError, tarfile.TarError, lzma.LZMAError, EOFError) as exc:
            raise ManifestError(f"cannot read {tarball}: {exc}") from None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def total_size(self) -> int:
        return sum(e.size or 0 for e in self.files)


def parse_listing(text: str) -> dict[str, Entry]:
    """What :data:`LISTING_SCRIPT` printed → ``{path: Entry}``."""
    entries: dict[str, dict] = {}
    hashes: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("E\t"):
            parts = line.split("\t")
            if len(parts) < 6:
                continue
            _, kind, mode, size, path, target = parts[:6]
            kind = {"f": "file", "d": "dir", "l": "symlink"}.get(kind, f"other:{kind}")
            entries[path] = {"type": kind, "mode": f"{int(mode, 8):04o}", "size": int(size), "target": target}
        elif line.startswith("H\t"):
            digest, _, path = line[2:].partition("  ")
            hashes[path.removeprefix("./")] = digest
    result = {}
    for path, e in entries.items():
        if e["type"] == "symlink":
            result[path] = Entry(path, "symlink", target=e["target"])
        elif e["type"] == "dir":
            result[path] = Entry(path, "dir", mode=e["mode"])
        else:
            result[path] = Entry(path, e["type"], mode=e["mode"], size=e["size"], sha256=hashes.get(path))
    return result


def verify(manifest: Manifest, observed: dict[str, Entry], *, version_text: str | None = None,
           manifest_text: str | None = None, limit: int = 20) -> list[str]:
    """Differences between *manifest* and the *observed* volume content (empty = intact).

    *version_text* / *manifest_text* are the volume's ``VERSION`` and
    ``MANIFEST.json`` (None = missing); both must match too.
    """
    problems: list[str] = []
    for want in manifest.files:
        have = observed.get(want.path)
        if have is None:
            problems.append(f"missing {want.path}")
        elif have.type != want.type:
            problems.append(f"{want.path}: is a {have.type}, expected a {want.type}")
        elif want.type == "symlink":
            if have.target != want.target:
                problems.append(f"{want.path}: links to {have.target!r}, expected {want.target!r}")
        else:
            if want.mode is not None and have.mode != want.mode:
                problems.append(f"{want.path}: mode {have.mode}, expected {want.mode}")
            if want.type == "file" and (have.size != want.size or have.sha256 != want.sha256):
                problems.append(f"{want.path}: content differs (size {have.size}, expected {want.size})")
    listed = {e.path for e in manifest.files} | UNLISTED
    problems += [f"unexpected {path}" for path in sorted(set(observed) - listed)]
    if manifest_text is None:
        problems.append(f"missing {MANIFEST_MEMBER}")
    elif manifest_text != manifest.text:
        problems.append(f"{MANIFEST_MEMBER} differs from the bundle's")
    if version_text is None:
        problems.append(f"missing {VERSION_FILE} (extraction did not finish)")
    elif version_text.strip() != str(manifest.volume_version):
        problems.append(f"{VERSION_FILE} is {version_text.strip()!r}, expected {manifest.volume_version}")
    if len(problems) > limit:
        problems = problems[:limit] + [f"… and {len(problems) - limit} more"]
    return problems


def entries_of(directory: Path, skip: Iterable[str] = UNLISTED) -> dict[str, Entry]:
    """``{path: Entry}`` for a directory on this host (tests, and checking a build output)."""
    import os
    import stat as st

    root = Path(directory)
    skipped = set(skip)
    result: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if rel in skipped:
                continue
            info = p.lstat()
            mode = f"{st.S_IMODE(info.st_mode):04o}"
            if st.S_ISLNK(info.st_mode):
                result[rel] = Entry(rel, "symlink", target=os.readlink(p))
            elif st.S_ISDIR(info.st_mode):
                result[rel] = Entry(rel, "dir", mode=mode)
            else:
                result[rel] = Entry(rel, "file", mode=mode, size=info.st_size,
                                    sha256=hashlib.sha256(p.read_bytes()).hexdigest())
    return result
