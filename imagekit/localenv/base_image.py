"""Build the local Debian base image with debootstrap (no registry access needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound

from ._common import LocalEnvError, file_lock, log
from .engine import _apt_install, ensure_engine

BASE_IMAGE_TAG = "bai-local/debian:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE_CHANGES: tuple[str, ...] = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
    "LABEL ai.backend.imagekit.base=debootstrap-minbase-bookworm",
)
WORK_ROOT = Path(os.environ.get("BAI_LOCALENV_WORK_ROOT", "/var/tmp"))


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def _ensure_debootstrap() -> str:
    path = shutil.which("debootstrap")
    if path is not None:
        return path
    if os.geteuid() != 0:
        raise LocalEnvError("debootstrap is not installed and we are not root")
    log("debootstrap not found; installing it…")
    _apt_install("debootstrap")
    path = shutil.which("debootstrap")
    if path is None:
        raise LocalEnvError("debootstrap still missing after apt-get install")
    return path


def _unmount_below(root: Path) -> None:
    """Lazily unmount anything a failed debootstrap left mounted inside *root*."""
    prefix = str(root.resolve()) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for mnt in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False, capture_output=True)


def _run_streamed(cmd: list[str], prefix: str) -> None:
    """Run *cmd*, echoing its output lines to stderr; raise with the tail on failure."""
    tail: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-30:]
        log(f"{prefix}: {line}")
    if proc.wait() != 0:
        joined = "\n".join(tail)
        raise LocalEnvError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{joined}")


def _build_rootfs(rootfs: Path, suite: str, mirror: str, arch: str | None = None) -> None:
    """A Debian minbase tree in *rootfs* (of *arch*, e.g. ``arm64``: its second stage runs emulated)."""
    debootstrap = _ensure_debootstrap()
    arch_opts = [f"--arch={arch}"] if arch else []
    _run_streamed([debootstrap, *arch_opts, "--variant=minbase", suite, str(rootfs), mirror], "debootstrap")
    # Trim caches that only bloat the image.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        d = rootfs / sub
        if d.is_dir():
            for entry in d.iterdir():
                if entry.is_file():
                    entry.unlink()


def _pack_rootfs(rootfs: Path, workdir: Path) -> Path:
    """``workdir/rootfs.tar`` with numeric owners, as ``docker import`` takes it."""
    tarball = workdir / "rootfs.tar"
    log(f"packing rootfs into {tarball}…")
    _run_streamed(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], "tar")
    return tarball


def _import_rootfs(client: docker.DockerClient, rootfs: Path, tag: str, workdir: Path) -> None:
    repository, _, image_tag = tag.rpartition(":")
    if not repository or "/" in image_tag:
        repository, image_tag = tag, "latest"
    tarball = _pack_rootfs(rootfs, workdir)
    log(f"importing rootfs as {tag}…")
    try:
        client.api.import_image_from_file(
            str(tarball), repository=repository, tag=image_tag, changes=list(BASE_IMAGE_CHANGES)
        )
    except DockerException as e:
        raise LocalEnvError(f"docker import of {tag} failed: {e}") from e


def verify_base_image(client: docker.DockerClient, tag: str) -> str:
    """Run ``cat /etc/debian_version`` in *tag* and return its output."""
    try:
        out = client.containers.run(tag, ["cat", "/etc/debian_version"], remove=True)
    except DockerException as e:
        raise LocalEnvError(f"base image {tag} does not run: {e}") from e
    version = out.decode(errors="replace").strip()
    if not version:
        raise LocalEnvError(f"base image {tag}: empty /etc/debian_version")
    return version


def ensure_base_image(
    tag: str = BASE_IMAGE_TAG,
    *,
    client: docker.DockerClient | None = None,
    suite: str = DEBIAN_SUITE,
    mirror: str = DEBIAN_MIRROR,
) -> str:
    """Return *tag*, building it with debootstrap + ``docker import`` if it does not exist."""
    client = client or ensure_engine()
    if image_exists(client, tag):
        return tag
    with file_lock(f"image-{tag}"):
        if image_exists(client, tag):
            return tag
        started = time.monotonic()
        log(f"building base image {tag} with debootstrap ({suite}, {mirror})…")
        WORK_ROOT.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="bai-rootfs.", dir=WORK_ROOT))
        try:
            rootfs = workdir / "rootfs"
            rootfs.mkdir()
            _build_rootfs(rootfs, suite, mirror)
            _import_rootfs(client, rootfs, tag, workdir)
        finally:
            _unmount_below(workdir)
            shutil.rmtree(workdir, ignore_errors=True)
        version = verify_base_image(client, tag)
        log(f"base image {tag} ready (Debian {version}, {time.monotonic() - started:.0f}s)")
    return tag
