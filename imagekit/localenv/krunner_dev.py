"""The development krunner volume: a venv at ``/opt/backend.ai`` with the runner's deps.

The checkout's ``krunner/`` and ``ai/`` packages are *not* in the volume; they are
bind-mounted read-only over the empty ``site-packages/krunner`` and
``site-packages/ai`` directories at container start (see
:func:`imagekit.localenv.krunner_mounts.dev_checkout_mount`).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import time
from pathlib import Path

import docker
from docker.errors import NotFound
from docker.types import Mount

from imagekit.bundle import RUNNER_REQUIREMENTS
from imagekit.docker_jobs import run_job

from ._common import LocalEnvError, file_lock, log
from .base_image import ensure_base_image
from .engine import ensure_engine
from .images import ensure_image

DEV_PREFIX = "/opt/backend.ai"
DEV_PYTHON_VERSION = "3.11"
DEV_SITE_PACKAGES = f"{DEV_PREFIX}/lib/python{DEV_PYTHON_VERSION}/site-packages"
DEV_PYTHON = f"{DEV_PREFIX}/bin/python"
DEV_MARKER = f"{DEV_PREFIX}/VERSION"
DEV_VOLUME_PREFIX = "bai-krunner-dev"
DEV_VOLUME_LABEL = "ai.backend.imagekit.krunner-dev"

#: the runner's pinned runtime dependencies: the same as the bundle's
DEV_REQUIREMENTS: tuple[str, ...] = RUNNER_REQUIREMENTS
# Mount points for the checkout's packages (the volume itself is mounted read-only).
DEV_OVERLAY_DIRS: tuple[str, ...] = (f"{DEV_SITE_PACKAGES}/krunner", f"{DEV_SITE_PACKAGES}/ai")

BUILDER_IMAGE_TAG = "bai-local/krunner-builder:bookworm"
BUILDER_CONTEXT = Path(__file__).resolve().parent / "builder"
HOST_CA_IN_CONTAINER = "/etc/bai-host-ca.pem"
DEFAULT_HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
BUILD_TIMEOUT_SECONDS = 900


def requirements_hash(requirements: tuple[str, ...] = DEV_REQUIREMENTS) -> str:
    """Short hash identifying the volume content (requirements + layout version)."""
    text = "\n".join(["layout=1", f"python={DEV_PYTHON_VERSION}", *sorted(r.strip().lower() for r in requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def dev_volume_name(requirements: tuple[str, ...] = DEV_REQUIREMENTS) -> str:
    """``bai-krunner-dev.<hash8>``."""
    return f"{DEV_VOLUME_PREFIX}.{requirements_hash(requirements)}"


def host_ca_bundle() -> Path | None:
    """The host CA bundle (incl. the intercepting proxy's CA), if any."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), DEFAULT_HOST_CA):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def build_script(requirements: tuple[str, ...], marker_text: str) -> str:
    """The shell script run inside the builder container (volume at DEV_PREFIX)."""
    reqs = " ".join(shlex.quote(r) for r in requirements)
    dirs = " ".join(shlex.quote(d) for d in DEV_OVERLAY_DIRS)
    return f"""set -eu
echo "wiping {DEV_PREFIX}"
find {DEV_PREFIX} -mindepth 1 -delete
/usr/bin/python3 -m venv {DEV_PREFIX}
{DEV_PYTHON} -m pip install --no-cache-dir --disable-pip-version-check --progress-bar off --only-binary=:all: {reqs}
{DEV_PYTHON} -c 'import zmq, uvloop, msgpack, pydantic, ptyprocess, jinja2, websockets; print("deps ok: pyzmq", zmq.__version__)'
mkdir -p {dirs}
printf '%s\\n' {shlex.quote(chr(10).join(requirements))} > {DEV_PREFIX}/requirements.txt
chmod -R a+rX {DEV_PREFIX}
printf '%s\\n' {shlex.quote(marker_text)} > {DEV_MARKER}.tmp
mv {DEV_MARKER}.tmp {DEV_MARKER}
"""


def _volume_complete(client: docker.DockerClient, volume: str, image: str) -> bool:
    """True if *volume* carries the completion marker."""
    try:
        client.containers.run(
            image, ["test", "-s", DEV_MARKER], remove=True,
            mounts=[Mount(DEV_PREFIX, volume, type="volume", read_only=True)],
            network_disabled=True,
        )
        return True
    except docker.errors.ContainerError:
        return False


def _run_builder(client: docker.DockerClient, volume: str, builder: str, script: str) -> None:
    mounts = [Mount(DEV_PREFIX, volume, type="volume")]
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    ca = host_ca_bundle()
    if ca is not None:
        mounts.append(Mount(HOST_CA_IN_CONTAINER, str(ca), type="bind", read_only=True))
        env["PIP_CERT"] = HOST_CA_IN_CONTAINER
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        if key in os.environ:
            env[key] = os.environ[key]
    run_job(
        client, builder, ["/bin/bash", "-c", script],
        what=f"building krunner volume {volume}", mounts=mounts, environment=env, timeout=BUILD_TIMEOUT_SECONDS,
    )


def ensure_dev_krunner_volume(
    *, client: docker.DockerClient | None = None, requirements: tuple[str, ...] = DEV_REQUIREMENTS
) -> str:
    """Create (if needed) the development krunner volume and return its name.

    An existing volume is trusted only if it carries the ``VERSION`` marker (written
    last by the build); otherwise its content is wiped and rebuilt.
    """
    client = client or ensure_engine()
    name = dev_volume_name(requirements)
    digest = requirements_hash(requirements)
    base = ensure_base_image(client=client)
    builder = ensure_image(BUILDER_CONTEXT, BUILDER_IMAGE_TAG, base, client=client)
    with file_lock(f"volume-{name}"):
        try:
            client.volumes.get(name)
            if _volume_complete(client, name, builder):
                return name
            log(f"volume {name} exists but is incomplete (no {DEV_MARKER}); wiping and rebuilding")
        except NotFound:
            client.volumes.create(name, driver="local", labels={DEV_VOLUME_LABEL: digest})
        started = time.monotonic()
        log(f"building krunner volume {name} ({len(requirements)} pinned requirements)…")
        _run_builder(client, name, builder, build_script(requirements, f"dev-{digest}"))
        if not _volume_complete(client, name, builder):
            raise LocalEnvError(f"krunner volume {name} has no {DEV_MARKER} after the build")
        log(f"krunner volume {name} ready ({time.monotonic() - started:.0f}s)")
    return name
