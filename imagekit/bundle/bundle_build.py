"""``krunner build``: assemble the bundle inside a builder container made from the local base image.

Nothing comes from the host's Python: the builder image has Debian's python3,
gcc and musl-gcc; PyPI wheels are fetched inside the (throw-away) build
container, with the host CA bundle bind-mounted read-only for pip.  The host
only contributes the checkout's ``krunner/`` and ``ai/`` sources and the web
terminal assets (fetched from npm by :mod:`imagekit.localenv.webterm_assets`).

The result in the output directory::

    krunner-env.<variant>.<arch>.tar.xz          the volume content (MANIFEST.json first)
    krunner-env.<variant>.<arch>.manifest.json   the same manifest, next to it
    kernel/                                      the /opt/kernel tools, ready to bind-mount
                                                 (entrypoint, su-exec, dropbearmulti, sftp-server, …)

A build is skipped when the manifest in the output directory carries the same
inputs hash (sources, builder context, requirements, launcher sources, builder image id).
The builder image also carries the static intrinsic sshd tools (``dropbearmulti``,
``sftp-server``), compiled from Debian's source packages by ``builder/build-sshd-tools.sh``
when the image is built; a change to that script or the Dockerfile rebuilds the image
and thereby changes the inputs hash.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.types import Mount

from imagekit.localenv._common import LocalEnvError, file_lock, log
from imagekit.localenv.base_image import ensure_base_image
from imagekit.localenv.engine import ensure_engine
from imagekit.localenv.images import context_hash, ensure_image
from imagekit.localenv.jobs import run_job
from imagekit.localenv.krunner_dev import DEV_REQUIREMENTS, HOST_CA_IN_CONTAINER, host_ca_bundle

from . import (
    AGENT_PYTHON_VERSION,
    ARCH,
    BUNDLE_FORMAT,
    DEFAULT_OUTPUT_DIR,
    PREFIX,
    REPO_ROOT,
    VARIANT,
    manifest_name,
    tarball_name,
)
from .manifest import Manifest, ManifestError

BUNDLE_DIR = Path(__file__).resolve().parent
BUILDER_CONTEXT = BUNDLE_DIR / "builder"
BUILDER_IMAGE_TAG = "bai-local/krunner-bundle-builder:bookworm"
BUILD_TIMEOUT_SECONDS = 1200
#: pinned runtime requirements of the bundle (the dev volume's, so both run the same deps)
BUNDLE_REQUIREMENTS: tuple[str, ...] = DEV_REQUIREMENTS
SIZE_TARGET_BYTES = 40 * 1024 * 1024


@dataclass(frozen=True)
class BundleBuild:
    output_dir: Path
    tarball: Path
    manifest_path: Path
    kernel_dir: Path
    manifest: Manifest
    cached: bool
    seconds: float

    @property
    def size(self) -> int:
        return self.tarball.stat().st_size


def _source_hash(builder_image_id: str, webterm_marker: str) -> str:
    parts = {
        "format": str(BUNDLE_FORMAT), "variant": VARIANT, "arch": ARCH, "prefix": PREFIX,
        "agent-python": AGENT_PYTHON_VERSION,
        "requirements": "\n".join(BUNDLE_REQUIREMENTS), "builder-image": builder_image_id,
        "webterm": webterm_marker,
        "krunner": context_hash(REPO_ROOT / "krunner"),
        "ai": context_hash(REPO_ROOT / "ai"),
        "csrc": context_hash(BUNDLE_DIR / "csrc"),
        "assemble": _file_hash(BUNDLE_DIR / "assemble.py"),
    }
    # BUILDER_CONTEXT holds the Dockerfile and build-sshd-tools.sh (the static dropbearmulti and
    # sftp-server are compiled while the builder image is built); the builder image id pins the
    # Debian packages and source versions actually used.
    return context_hash(BUILDER_CONTEXT, parts)[:16]


def _file_hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _webterm_assets() -> tuple[Path | None, str]:
    from imagekit.localenv.webterm_assets import MARKER, ensure_webterm_assets

    try:
        directory = ensure_webterm_assets()
    except LocalEnvError as exc:
        log(f"krunner build: web terminal assets unavailable ({exc}); building without kernel/webterm-assets")
        return None, "none"
    return directory, (directory / MARKER).read_text()


def _cached(output_dir: Path, inputs_hash: str) -> Manifest | None:
    tarball, manifest_path = output_dir / tarball_name(), output_dir / manifest_name()
    if not (tarball.is_file() and manifest_path.is_file() and (output_dir / "kernel").is_dir()):
        return None
    try:
        manifest = Manifest.from_file(manifest_path)
    except ManifestError:
        return None
    return manifest if manifest.inputs_hash == inputs_hash else None


def build_bundle(
    output_dir: Path | None = None, *, force: bool = False, client: docker.DockerClient | None = None
) -> BundleBuild:
    """Build (or reuse) the bundle in *output_dir*; raises :class:`LocalEnvError` on failure."""
    started = time.monotonic()
    output_dir = Path(output_dir or DEFAULT_OUTPUT_DIR).resolve()
    client = client or ensure_engine()
    base = ensure_base_image(client=client)
    builder = ensure_image(BUILDER_CONTEXT, BUILDER_IMAGE_TAG, base, client=client)
    assets, assets_marker = _webterm_assets()
    inputs_hash = _source_hash(client.images.get(builder).id, assets_marker)
    tarball, manifest_path, kernel_dir = output_dir / tarball_name(), output_dir / manifest_name(), output_dir / "kernel"
    with file_lock(f"krunner-bundle-{output_dir}"):
        manifest = None if force else _cached(output_dir, inputs_hash)
        if manifest is not None:
            log(f"krunner build: {tarball} is up to date (inputs {inputs_hash})")
            return BundleBuild(output_dir, tarball, manifest_path, kernel_dir, manifest, True,
                               time.monotonic() - started)
        from krunner import __version__ as krunner_version

        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".build.", dir=output_dir) as tmp:
            work = Path(tmp)
            (work / "job").mkdir()
            (work / "out").mkdir()
            (work / "empty-assets").mkdir()
            job = {
                "prefix": PREFIX, "requirements": list(BUNDLE_REQUIREMENTS), "format": BUNDLE_FORMAT,
                "variant": VARIANT, "arch": ARCH, "version": f"{krunner_version}+{inputs_hash}",
                "agent_python": AGENT_PYTHON_VERSION,
                "inputs_hash": inputs_hash, "tarball": tarball_name(), "xz_threads": 2,
            }
            (work / "job" / "job.json").write_text(json.dumps(job))
            mounts = [
                Mount("/src/krunner", str(REPO_ROOT / "krunner"), type="bind", read_only=True),
                Mount("/src/ai", str(REPO_ROOT / "ai"), type="bind", read_only=True),
                Mount("/src/bundle", str(BUNDLE_DIR), type="bind", read_only=True),
                Mount("/src/webterm-assets", str(assets or work / "empty-assets"), type="bind", read_only=True),
                Mount("/job", str(work / "job"), type="bind", read_only=True),
                Mount("/out", str(work / "out"), type="bind"),
            ]
            env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1"}
            ca = host_ca_bundle()
            if ca is not None:  # bind-mounted into the throw-away container only; never in an image or volume
                mounts.append(Mount(HOST_CA_IN_CONTAINER, str(ca), type="bind", read_only=True))
                env["PIP_CERT"] = HOST_CA_IN_CONTAINER
            for key in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
                if key in os.environ:
                    env[key] = os.environ[key]
            log(f"krunner build: assembling {tarball_name()} in {builder} (inputs {inputs_hash})…")
            run_job(
                client, builder, ["python3", "-u", "/src/bundle/assemble.py", "/job/job.json"],
                what="krunner build", mounts=mounts, environment=env, timeout=BUILD_TIMEOUT_SECONDS,
            )
            out = work / "out"
            manifest = Manifest.from_file(out / "MANIFEST.json")
            # replace the previous result; the manifest goes last (it is the cache marker)
            manifest_path.unlink(missing_ok=True)
            shutil.rmtree(kernel_dir, ignore_errors=True)
            os.replace(out / tarball_name(), tarball)
            os.replace(out / "kernel", kernel_dir)
            os.replace(out / "MANIFEST.json", manifest_path)
    result = BundleBuild(output_dir, tarball, manifest_path, kernel_dir, manifest, False, time.monotonic() - started)
    log(f"krunner build: {tarball} {result.size / 1e6:.1f} MB compressed, "
        f"{manifest.total_size() / 1e6:.1f} MB unpacked, {len(manifest.files)} entries ({result.seconds:.0f}s)")
    return result
