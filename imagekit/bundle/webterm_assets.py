"""Fetch the web terminal's front end (xterm.js + addon-fit) from npm into a cache dir.

Part of ``bai-imagekit krunner build`` (the bundle's ``kernel/webterm-assets``), unless the build is
given a directory with ``--webterm-assets DIR``.  ``ensure_webterm_assets()`` runs ``npm pack`` for
pinned versions, checks the tarballs' integrity against pinned hashes, extracts only the files the
page needs and writes ``VERSIONS.json`` last, so an interrupted fetch is redone.  The resulting
directory is what ``python -m krunner.webterm --assets`` expects (``/opt/kernel/webterm-assets`` in
images).

``python -m imagekit.bundle.webterm_assets [DIR]`` prints the directory (default: the user's cache).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from imagekit.console import progress
from imagekit.locks import file_lock

from . import cache_root

NPM_TIMEOUT_SECONDS = 180
MARKER = "VERSIONS.json"


class WebtermAssetsError(RuntimeError):
    """The assets could not be fetched (no npm, registry unreachable, integrity mismatch)."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bai-imagekit/webterm-assets``."""
    return cache_root() / "webterm-assets"


@dataclasses.dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity (sha512)
    files: dict[str, str]  # path inside the tarball -> file name in the assets dir

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


PACKAGES: tuple[NpmPackage, ...] = (
    NpmPackage(
        "@xterm/xterm",
        "5.5.0",
        "sha512-hqJHYaQb5OptNunnyAnkHyM8aCjZ1MEIDTQu1iIbbTD/xops91NB5yq1ZK/dC2JDbVWtF23zUtl9JE2NqwT87A==",
        {"package/lib/xterm.js": "xterm.js", "package/css/xterm.css": "xterm.css", "package/LICENSE": "xterm.LICENSE"},
    ),
    NpmPackage(
        "@xterm/addon-fit",
        "0.10.0",
        "sha512-UFYkDm4HUahf2lnEyHvio51TNGiLK66mqP2JoATy7hRZeXaGMRDr00JiSF7m63vR5WKATF605yEggJKsw0JpMQ==",
        {"package/lib/addon-fit.js": "addon-fit.js", "package/LICENSE": "addon-fit.LICENSE"},
    ),
)


def marker_text() -> str:
    """The ``VERSIONS.json`` of a complete directory (part of the bundle's inputs hash)."""
    return json.dumps({p.name: p.version for p in PACKAGES}, indent=2, sort_keys=True) + "\n"


def _complete(directory: Path) -> bool:
    marker = directory / MARKER
    if not marker.is_file() or marker.read_text() != marker_text():
        return False
    return all((directory / name).is_file() for p in PACKAGES for name in p.files.values())


def _sri(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _npm_pack(workdir: Path) -> list[Path]:
    npm = shutil.which("npm")
    if npm is None:
        raise WebtermAssetsError("npm is not installed; it is needed to fetch the web terminal assets")
    cmd = [npm, "pack", "--json", "--silent", *(p.spec for p in PACKAGES)]
    try:
        proc = subprocess.run(
            cmd, cwd=workdir, capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WebtermAssetsError(f"`npm pack` timed out after {NPM_TIMEOUT_SECONDS}s") from exc
    if proc.returncode != 0:
        tail = "\n".join(f"    {line}" for line in proc.stderr.strip().splitlines()[-15:])
        raise WebtermAssetsError(f"`{' '.join(cmd[1:])}` failed (exit {proc.returncode}):\n{tail}")
    try:
        entries = json.loads(proc.stdout)
        tarballs = {(e["name"], e["version"]): workdir / e["filename"] for e in entries}
    except (ValueError, KeyError, TypeError) as exc:
        raise WebtermAssetsError(f"cannot parse `npm pack --json` output: {exc}") from exc
    result = []
    for package in PACKAGES:
        tarball = tarballs.get((package.name, package.version))
        if tarball is None or not tarball.is_file():
            raise WebtermAssetsError(f"`npm pack` did not produce {package.spec}")
        if _sri(tarball) != package.integrity:
            raise WebtermAssetsError(f"{package.spec}: tarball integrity mismatch (expected {package.integrity})")
        result.append(tarball)
    return result


def _extract(package: NpmPackage, tarball: Path, dest: Path) -> None:
    with tarfile.open(tarball, "r:gz") as tar:
        for member_name, file_name in package.files.items():
            try:
                member = tar.getmember(member_name)
            except KeyError as exc:
                raise WebtermAssetsError(f"{package.spec}: {member_name} is missing from the tarball") from exc
            source = tar.extractfile(member) if member.isfile() else None
            if source is None:
                raise WebtermAssetsError(f"{package.spec}: {member_name} is not a regular file")
            with source:
                (dest / file_name).write_bytes(source.read())


def is_complete(directory: Path) -> bool:
    """*directory* holds every asset of the pinned versions (and their ``VERSIONS.json``)."""
    return _complete(Path(directory))


def ensure_webterm_assets(cache_dir: Path | None = None) -> Path:
    """Return *cache_dir* holding ``xterm.js``, ``xterm.css``, ``addon-fit.js`` (+ licenses).

    Fetched from the npm registry once (pinned versions and integrity); later calls
    return immediately.  Raises :class:`WebtermAssetsError` if npm fails.
    """
    cache_dir = Path(cache_dir or default_cache_dir())
    if _complete(cache_dir):
        return cache_dir
    with file_lock(f"webterm-assets-{cache_dir}"):
        if _complete(cache_dir):
            return cache_dir
        progress(f"fetching web terminal assets ({', '.join(p.spec for p in PACKAGES)}) into {cache_dir}")
        cache_dir.mkdir(parents=True, exist_ok=True)
        (cache_dir / MARKER).unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="webterm-assets.") as tmp:
            work = Path(tmp)
            for package, tarball in zip(PACKAGES, _npm_pack(work), strict=True):
                _extract(package, tarball, cache_dir)
        (cache_dir / f"{MARKER}.tmp").write_text(marker_text())
        (cache_dir / f"{MARKER}.tmp").replace(cache_dir / MARKER)
    return cache_dir


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        print(ensure_webterm_assets(Path(args[0]) if args else None))
    except WebtermAssetsError as exc:
        print(f"webterm-assets: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
