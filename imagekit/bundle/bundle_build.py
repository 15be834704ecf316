"""``krunner build``: assemble the bundle inside a builder container made from a Debian 12 base image.

Nothing comes from the host's Python: the builder image (``builder/Dockerfile`` on top of the base
image, :mod:`.debian_base`) has Debian's python3, gcc and musl-gcc; PyPI wheels are fetched inside
the throw-away build container, with the CA bundle given by ``--ca-bundle`` bind-mounted read-only
for pip.  The host contributes the installed ``krunner`` and ``ai.backend.kernel`` packages (the
checkout's in an editable install, the wheel's otherwise) and the web terminal assets
(:mod:`.webterm_assets`, or a directory given with ``--webterm-assets``).

The result in the output directory (:func:`imagekit.bundle.default_output_dir`)::

    krunner-env.<variant>.<arch>.tar.xz          the volume content (MANIFEST.json first)
    krunner-env.<variant>.<arch>.manifest.json   the same manifest, next to it
    kernel/                                      the /opt/kernel tools, ready to bind-mount
                                                 (entrypoint, su-exec, dropbearmulti, sftp-server, …)

A build is skipped when the manifest in the output directory carries the same inputs hash
(sources, builder context, requirements, launcher sources, builder image id, web terminal asset
versions).  The builder image also carries the static intrinsic sshd tools (``dropbearmulti``,
``sftp-server``), compiled from Debian's source packages by ``builder/build-sshd-tools.sh`` when
the image is built; a change to that script or the Dockerfile rebuilds the image and thereby
changes the inputs hash.

``arch`` (``--arch``, default the host's): a bundle for another architecture is cross-built on
this x86_64 host in the cross builder (``builder-cross/Dockerfile`` on top of the builder image:
Debian's arm64 packages, ``aarch64-linux-gnu-gcc``); its tools directory is ``kernel.<arch>``
(:func:`imagekit.bundle.kernel_dir_name`).  The host must run arm64 binaries through QEMU
user-mode emulation (binfmt): the cross-compiled sshd tools are configured and checked, and the
bundle's self-check runs, under it.  Without it the build stops at once with
:class:`~imagekit.bundle.EmulationUnavailable`, saying what to install; it never sets it up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.types import Mount

from imagekit.console import progress
from imagekit.context_images import context_hash, ensure_image
from imagekit.docker_jobs import run_job
from imagekit.locks import file_lock

from . import (
    AGENT_PYTHON_VERSION,
    ARCH,
    ARCHES,
    BUNDLE_FORMAT,
    PREFIX,
    RUNNER_REQUIREMENTS,
    VARIANT,
    EmulationUnavailable,
    ai_kernel_sources,
    default_output_dir,
    emulation_problem,
    host_arch,
    kernel_dir_name,
    krunner_sources,
    manifest_name,
    tarball_name,
)
from .debian_base import require_base_image, resolve_base_image
from .manifest import Manifest, ManifestError
from .webterm_assets import (
    MARKER,
    WebtermAssetsError,
    ensure_webterm_assets,
    is_complete,
    marker_text,
)

BUNDLE_DIR = Path(__file__).resolve().parent
BUILDER_CONTEXT = BUNDLE_DIR / "builder"
BUILDER_IMAGE_TAG = "bai-local/krunner-bundle-builder:bookworm"
#: the cross builder (x86_64 host → aarch64 bundle), built on top of BUILDER_IMAGE_TAG
CROSS_CONTEXT = BUNDLE_DIR / "builder-cross"
CROSS_BUILDER_TAG = "bai-local/krunner-bundle-builder-{arch}:bookworm"
BUILD_TIMEOUT_SECONDS = 1200
SIZE_TARGET_BYTES = 40 * 1024 * 1024
#: where the CA bundle is bind-mounted in the throw-away build container (pip's PIP_CERT)
CA_IN_CONTAINER = "/etc/bai-host-ca.pem"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


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


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inputs_hash(builder_image_id: str, webterm_marker: str, arch: str = ARCH) -> str:
    """The cache key of a build: everything that ends up in the bundle, short."""
    parts = {
        "format": str(BUNDLE_FORMAT), "variant": VARIANT, "arch": arch, "prefix": PREFIX,
        "agent-python": AGENT_PYTHON_VERSION,
        "requirements": "\n".join(RUNNER_REQUIREMENTS), "builder-image": builder_image_id,
        "webterm": webterm_marker,
        "krunner": context_hash(krunner_sources()),
        "ai-backend-kernel": context_hash(ai_kernel_sources()),
        "csrc": context_hash(BUNDLE_DIR / "csrc"),
        "assemble": _file_hash(BUNDLE_DIR / "assemble.py"),
    }
    if arch != host_arch():
        parts["builder-cross"] = context_hash(CROSS_CONTEXT)
    # BUILDER_CONTEXT holds the Dockerfile and build-sshd-tools.sh (the static dropbearmulti and
    # sftp-server are compiled while the builder image is built); the builder image id pins the
    # Debian packages and source versions actually used.
    return context_hash(BUILDER_CONTEXT, parts)[:16]


def _cached(output_dir: Path, wanted: str, arch: str = ARCH) -> Manifest | None:
    tarball, manifest_path = output_dir / tarball_name(arch=arch), output_dir / manifest_name(arch=arch)
    if not (tarball.is_file() and manifest_path.is_file() and (output_dir / kernel_dir_name(arch)).is_dir()):
        return None
    try:
        manifest = Manifest.from_file(manifest_path)
    except ManifestError:
        return None
    return manifest if manifest.inputs_hash == wanted else None


def ensure_builder(client: docker.DockerClient, base: str, arch: str) -> str:
    """The builder image for *arch*: the native one, or the cross builder on top of it (x86_64 hosts only)."""
    if arch not in ARCHES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHES)}")
    builder = ensure_image(BUILDER_CONTEXT, BUILDER_IMAGE_TAG, base, client=client)
    if arch == host_arch():
        return builder
    if host_arch() != "x86_64":
        raise ValueError(f"a {arch} bundle is cross-built on x86_64 hosts only (this host is {host_arch()}); "
                         f"build it on an x86_64 host or natively on {arch}")
    problem = emulation_problem(arch)
    if problem:
        raise EmulationUnavailable(f"cross-building the {arch} bundle: {problem}")
    # the context: the cross Dockerfile and the sshd-tools script it cross-compiles with (one copy of it)
    with tempfile.TemporaryDirectory(prefix="bai-cross-builder.") as tmp:
        context = Path(tmp)
        shutil.copy2(CROSS_CONTEXT / "Dockerfile", context / "Dockerfile")
        shutil.copy2(BUILDER_CONTEXT / "build-sshd-tools.sh", context / "build-sshd-tools.sh")
        return ensure_image(context, CROSS_BUILDER_TAG.format(arch=arch), builder, client=client)


def pip_cert_from_environment() -> Path | None:
    """``$PIP_CERT`` when it names a readable file: the CA pip on this host is configured with.

    Like the proxy variables, it is how the calling environment already reaches PyPI, so the build
    container's pip uses it too when no ``--ca-bundle`` is given.
    """
    value = os.environ.get("PIP_CERT")
    if value and Path(value).is_file() and os.access(value, os.R_OK):
        return Path(value).resolve()
    return None


def _build_environment(ca_bundle: Path | None, mounts: list[Mount]) -> dict[str, str]:
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    if ca_bundle is not None:  # bind-mounted into the throw-away container only; never in an image or volume
        mounts.append(Mount(CA_IN_CONTAINER, str(ca_bundle), type="bind", read_only=True))
        env["PIP_CERT"] = CA_IN_CONTAINER
    env.update({key: os.environ[key] for key in PROXY_VARIABLES if key in os.environ})
    return env


def build_bundle(
    output_dir: Path | None = None,
    *,
    client: docker.DockerClient,
    base_image: str | None = None,
    webterm_assets: Path | None = None,
    ca_bundle: Path | None = None,
    force: bool = False,
    arch: str = ARCH,
) -> BundleBuild:
    """Build (or reuse) the bundle in *output_dir* (default: :func:`default_output_dir`).

    *base_image*: a Debian 12 image for the builder (default :func:`resolve_base_image`; pulled if
    missing).  *webterm_assets*: a complete assets directory; by default they are fetched from npm
    into the user's cache (only when a build actually runs); if that fails the bundle is built
    without ``kernel/webterm-assets``.  *ca_bundle*: for pip behind a TLS-intercepting proxy
    (the CLI defaults it to :func:`pip_cert_from_environment`).

    *arch*: the bundle's architecture (:data:`imagekit.bundle.ARCHES`; default the host's).

    Raises :class:`imagekit.docker_jobs.DockerJobError` (or :class:`docker.errors.DockerException`)
    on failure and :class:`ValueError` for an incomplete *webterm_assets* directory or an
    architecture this host cannot build.
    """
    started = time.monotonic()
    output_dir = Path(output_dir or default_output_dir()).resolve()
    base = require_base_image(client, resolve_base_image(base_image))
    builder = ensure_builder(client, base, arch)
    builder_id = client.images.get(builder).id
    if webterm_assets is not None:
        if not is_complete(webterm_assets):
            raise ValueError(f"{webterm_assets} is not a complete web terminal assets directory (no {MARKER} "
                             "for the pinned versions); fetch it with `python -m imagekit.bundle.webterm_assets DIR`")
        assets: Path | None = Path(webterm_assets).resolve()
        wanted = inputs_hash(builder_id, (Path(webterm_assets) / MARKER).read_text(), arch)
    else:
        assets, wanted = None, inputs_hash(builder_id, marker_text(), arch)
    names = tarball_name(arch=arch), manifest_name(arch=arch), kernel_dir_name(arch)
    tarball, manifest_path, kernel_dir = (output_dir / name for name in names)
    with file_lock(f"krunner-bundle-{output_dir}"):
        manifest = None if force else _cached(output_dir, wanted, arch)
        if manifest is not None:
            progress(f"krunner build: {tarball} is up to date (inputs {wanted})")
            return BundleBuild(output_dir, tarball, manifest_path, kernel_dir, manifest, True,
                               time.monotonic() - started)
        if webterm_assets is None:
            try:
                assets = ensure_webterm_assets()
            except WebtermAssetsError as exc:
                progress(f"krunner build: web terminal assets unavailable ({exc}); building without "
                         "kernel/webterm-assets")
                wanted = inputs_hash(builder_id, "none", arch)
        from krunner import __version__ as krunner_version

        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".build.", dir=output_dir) as tmp:
            work = Path(tmp)
            (work / "job").mkdir()
            (work / "out").mkdir()
            (work / "empty-assets").mkdir()
            job = {
                "prefix": PREFIX, "requirements": list(RUNNER_REQUIREMENTS), "format": BUNDLE_FORMAT,
                "variant": VARIANT, "arch": arch, "version": f"{krunner_version}+{wanted}",
                "agent_python": AGENT_PYTHON_VERSION,
                "inputs_hash": wanted, "tarball": tarball.name, "xz_threads": 2,
            }
            (work / "job" / "job.json").write_text(json.dumps(job))
            mounts = [
                Mount("/src/krunner", str(krunner_sources()), type="bind", read_only=True),
                Mount("/src/ai/backend/kernel", str(ai_kernel_sources()), type="bind", read_only=True),
                Mount("/src/bundle", str(BUNDLE_DIR), type="bind", read_only=True),
                Mount("/src/webterm-assets", str(assets or work / "empty-assets"), type="bind", read_only=True),
                Mount("/job", str(work / "job"), type="bind", read_only=True),
                Mount("/out", str(work / "out"), type="bind"),
            ]
            env = _build_environment(ca_bundle, mounts)
            progress(f"krunner build: assembling {tarball.name} in {builder} (inputs {wanted})…")
            run_job(
                client, builder, ["python3", "-u", "/src/bundle/assemble.py", "/job/job.json"],
                what="krunner build", mounts=mounts, environment=env, timeout=BUILD_TIMEOUT_SECONDS,
            )
            out = work / "out"
            manifest = Manifest.from_file(out / "MANIFEST.json")
            # replace the previous result; the manifest goes last (it is the cache marker)
            manifest_path.unlink(missing_ok=True)
            shutil.rmtree(kernel_dir, ignore_errors=True)
            os.replace(out / tarball.name, tarball)
            os.replace(out / "kernel", kernel_dir)
            os.replace(out / "MANIFEST.json", manifest_path)
    result = BundleBuild(output_dir, tarball, manifest_path, kernel_dir, manifest, False, time.monotonic() - started)
    progress(f"krunner build: {tarball} {result.size / 1e6:.1f} MB compressed, "
             f"{manifest.total_size() / 1e6:.1f} MB unpacked, {len(manifest.files)} entries ({result.seconds:.0f}s)")
    return result
