"""``krunner install``: put a bundle into the Docker volume ``backendai-krunner.v<N>.<arch>.<variant>``.

Unlike upstream (which trusts an existing volume by its name), the volume's
content is checked against the bundle's manifest every time: every file's
sha256, mode and size, symlink targets, no extra files, and the ``VERSION``
marker that is written last.  A missing, half-extracted or tampered volume is
emptied and extracted again.

The helper containers are made from the Debian 12 base image (:mod:`.debian_base`:
``--base-image``, ``$BAI_IMAGEKIT_BASE_IMAGE`` or ``debian:bookworm``; GNU find, coreutils,
tar); the tarball is decompressed on the host (Python's lzma) into a temporary
plain ``.tar`` that is bind-mounted read-only, so the helper needs no ``xz``.
"""

from __future__ import annotations

import lzma
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import ContainerError, DockerException, NotFound
from docker.types import Mount

from imagekit.console import progress
from imagekit.docker_jobs import DockerJobError
from imagekit.engine import connect
from imagekit.locks import file_lock

from . import volume_name
from .debian_base import require_base_image, resolve_base_image
from .manifest import (
    LISTING_SCRIPT,
    MANIFEST_MEMBER,
    VERSION_FILE,
    Manifest,
    parse_listing,
    verify,
)

VOLUME_LABEL = "ai.backend.imagekit.krunner-bundle"
VERSION_LABEL = "ai.backend.krunner.version"


@dataclass(frozen=True)
class InstallResult:
    volume: str
    action: str  # "up-to-date" | "created" | "repaired"
    problems: list[str]
    seconds: float


def _run_helper(client: docker.DockerClient, image: str, script: str, mounts: list[Mount]) -> str:
    try:
        out = client.containers.run(
            image, ["/bin/sh", "-c", script], mounts=mounts, remove=True, network_disabled=True,
            stdout=True, stderr=False,
        )
    except ContainerError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr)
        raise DockerJobError(f"helper container failed (exit {exc.exit_status}): {stderr.strip()[-2000:]}") from None
    return out.decode(errors="replace")


def inspect_volume(client: docker.DockerClient, image: str, volume: str, manifest: Manifest) -> list[str]:
    """What differs between the *volume* and *manifest* (empty = intact)."""
    script = LISTING_SCRIPT + f"""
echo 'M-BEGIN'; cat {MANIFEST_MEMBER} 2>/dev/null || echo 'M-ABSENT'; echo 'M-END'
echo 'V-BEGIN'; cat {VERSION_FILE} 2>/dev/null || echo 'V-ABSENT'
"""
    out = _run_helper(client, image, script, [Mount("/vol", volume, type="volume", read_only=True)])
    listing, _, rest = out.partition("M-BEGIN\n")
    manifest_part, _, version_part = rest.partition("M-END\nV-BEGIN\n")
    manifest_text = None if manifest_part == "M-ABSENT\n" else manifest_part
    version_text = None if version_part.strip() == "V-ABSENT" else version_part
    return verify(manifest, parse_listing(listing), version_text=version_text, manifest_text=manifest_text)


def _extract(client: docker.DockerClient, image: str, volume: str, tarball: Path, manifest: Manifest) -> None:
    with tempfile.TemporaryDirectory(prefix="bai-krunner-install.") as tmp:
        plain = Path(tmp) / "bundle.tar"
        progress(f"krunner install: decompressing {tarball.name}…")
        with lzma.open(tarball) as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        progress(f"krunner install: extracting into volume {volume}…")
        script = f"""set -e
find /vol -mindepth 1 -delete
tar -x --no-same-owner -C /vol -f /bundle.tar
chown -R 0:0 /vol
echo {manifest.volume_version} > /vol/{VERSION_FILE}.tmp
mv /vol/{VERSION_FILE}.tmp /vol/{VERSION_FILE}
"""
        _run_helper(client, image, script, [
            Mount("/vol", volume, type="volume"),
            Mount("/bundle.tar", str(plain), type="bind", read_only=True),
        ])


def install_volume(
    tarball: Path,
    *,
    client: docker.DockerClient | None = None,
    base_image: str | None = None,
    name: str | None = None,
    force: bool = False,
) -> InstallResult:
    """Create or repair the krunner volume for *tarball*; return what was done.

    Raises :class:`imagekit.bundle.manifest.ManifestError` for a bad tarball and
    :class:`DockerJobError` when Docker fails or the volume does not verify after extraction.
    """
    started = time.monotonic()
    tarball = Path(tarball)
    manifest = Manifest.from_tarball(tarball)
    name = name or volume_name(manifest.volume_version, manifest.arch, manifest.variant)
    client = client or connect()
    helper = require_base_image(client, resolve_base_image(base_image))
    with file_lock(f"volume-{name}"):
        try:
            client.volumes.get(name)
            action = "repaired"
        except NotFound:
            client.volumes.create(name, driver="local", labels={VOLUME_LABEL: "1", VERSION_LABEL: str(manifest.volume_version)})
            action = "created"
        problems = [] if action == "created" else inspect_volume(client, helper, name, manifest)
        if action == "repaired" and not problems and not force:
            progress(f"krunner install: volume {name} is intact ({len(manifest.files)} entries, {manifest.version})")
            return InstallResult(name, "up-to-date", [], time.monotonic() - started)
        for problem in problems:
            progress(f"krunner install: {name}: {problem}")
        _extract(client, helper, name, tarball, manifest)
        after = inspect_volume(client, helper, name, manifest)
        if after:
            raise DockerJobError(f"volume {name} does not match the manifest after extraction: " + "; ".join(after[:5]))
    result = InstallResult(name, action, problems, time.monotonic() - started)
    progress(f"krunner install: volume {name} {action} and verified ({result.seconds:.1f}s)")
    return result


def install_plain_volume(
    tarball: Path, name: str, version: str, *, client: docker.DockerClient | None = None, base_image: str | None = None
) -> str:
    """Create *name* from a ``.tar.xz`` without a manifest (upstream's krunner env), the way the agent's
    extractor does: empty the volume, extract, write ``VERSION`` last. Skipped when ``VERSION`` matches."""
    client = client or connect()
    helper = require_base_image(client, resolve_base_image(base_image))
    with file_lock(f"volume-{name}"):
        try:
            client.volumes.get(name)
            current = _run_helper(client, helper, "cat /vol/VERSION 2>/dev/null || true",
                                  [Mount("/vol", name, type="volume", read_only=True)]).strip()
            if current == version:
                return name
        except NotFound:
            client.volumes.create(name, driver="local", labels={VOLUME_LABEL: "stock"})
        with tempfile.TemporaryDirectory(prefix="bai-stock-krunner.") as tmp:
            plain = Path(tmp) / "env.tar"
            with lzma.open(tarball) as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            progress(f"krunner install: extracting {Path(tarball).name} into volume {name}…")
            _run_helper(client, helper, f"""set -e
find /vol -mindepth 1 -delete
tar -x -C /vol -f /env.tar
echo {version} > /vol/VERSION
""", [Mount("/vol", name, type="volume"), Mount("/env.tar", str(plain), type="bind", read_only=True)])
    return name


def remove_volume(name: str, *, client: docker.DockerClient | None = None) -> bool:
    """Remove the volume *name*; False if it did not exist."""
    client = client or connect()
    try:
        client.volumes.get(name).remove(force=True)
    except NotFound:
        return False
    except DockerException as exc:
        raise DockerJobError(f"cannot remove volume {name}: {exc}") from exc
    return True
