"""arm64 containers on this x86_64 host through QEMU user-mode emulation (this repository's test set-up).

* :func:`ensure_emulation` – idempotent: ``apt-get install qemu-user-static binfmt-support`` when
  missing, mount ``binfmt_misc`` when it is not mounted, ``update-binfmts --enable qemu-aarch64``;
  raises :class:`EmulationUnavailable` with the reason when the host cannot (not root, no
  ``binfmt_misc`` in the kernel, a handler without the ``F`` flag that containers need);
* :func:`ensure_arm64_base_image` – ``bai-local/debian:bookworm-arm64``: ``debootstrap --arch=arm64
  --variant=minbase`` (the second stage runs under the emulator the kernel now knows) and
  ``docker import --platform linux/arm64``; verified by ``uname -m`` = ``aarch64`` in a container;
* :func:`ensure_arm64_busybox_image` – ``bai-local/busybox:arm64``: Debian's ``busybox-static:arm64``
  alone in a scratch image (fetched natively in an amd64 throw-away container, no emulation);
* :func:`ensure_arm64` – all three (what ``python -m imagekit.localenv prepare-arm64`` runs).

The product never does this on its own: enabling binfmt changes the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from docker.errors import DockerException

from imagekit import bundle
from imagekit.bundle import BINFMT_DIR

from ._common import LocalEnvError, file_lock, log
from .base_image import (
    BASE_IMAGE_CHANGES,
    DEBIAN_MIRROR,
    DEBIAN_SUITE,
    WORK_ROOT,
    _build_rootfs,
    _pack_rootfs,
    _unmount_below,
    ensure_base_image,
    image_exists,
)
from .engine import _apt_install, ensure_engine

ARCH = "aarch64"
HANDLER = f"qemu-{ARCH}"
PLATFORM = "linux/arm64"
ARM64_BASE_IMAGE_TAG = "bai-local/debian:bookworm-arm64"
ARM64_BUSYBOX_IMAGE_TAG = "bai-local/busybox:arm64"
PACKAGES = ("qemu-user-static", "binfmt-support")


class EmulationUnavailable(LocalEnvError, bundle.EmulationUnavailable):
    """This host cannot run arm64 containers and the set-up could not make it (the message says why
    and what would fix it)."""


def handler_state(binfmt_dir: Path = BINFMT_DIR) -> tuple[bool, str]:
    """``(enabled, flags)`` of the qemu-aarch64 binfmt handler (``(False, "")`` when absent)."""
    return bundle.binfmt_handler_state(ARCH, binfmt_dir)


def _mount_binfmt_misc() -> None:
    if (BINFMT_DIR / "status").exists():
        return
    log(f"mounting binfmt_misc at {BINFMT_DIR}…")
    proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (BINFMT_DIR / "status").exists():
        raise EmulationUnavailable(
            f"cannot mount binfmt_misc at {BINFMT_DIR} ({proc.stderr.strip() or 'no status file'}): the kernel "
            "lacks binfmt_misc or this (unprivileged) container may not mount it; arm64 tests need a host that can")


def ensure_emulation() -> str:
    """Enable the qemu-aarch64 handler (idempotent); return its state line. Raises :class:`EmulationUnavailable`."""
    enabled, flags = handler_state()
    if enabled and "F" in flags:
        return f"{HANDLER} enabled (flags {flags})"
    if os.geteuid() != 0:
        raise EmulationUnavailable(
            f"arm64 emulation is not enabled ({HANDLER} handler {'without F flag' if enabled else 'missing'}) and "
            "enabling it needs root: run `python -m imagekit.localenv prepare-arm64` as root")
    with file_lock("arm64-emulation"):
        if shutil.which("update-binfmts") is None or not Path("/usr/bin/qemu-aarch64-static").exists():
            log(f"installing {' '.join(PACKAGES)}…")
            _apt_install(*PACKAGES)
        _mount_binfmt_misc()
        proc = subprocess.run(["update-binfmts", "--enable", HANDLER], capture_output=True, text=True)
        enabled, flags = handler_state()
        if not enabled:
            raise EmulationUnavailable(
                f"update-binfmts --enable {HANDLER} failed ({(proc.stderr or proc.stdout).strip()}); "
                f"{BINFMT_DIR / HANDLER} is not enabled")
        if "F" not in flags:
            raise EmulationUnavailable(
                f"the {HANDLER} handler has flags {flags!r} without F (fix-binary): containers cannot find the "
                "interpreter; reinstall Debian's qemu-user-static (its handler is registered with F)")
    return f"{HANDLER} enabled (flags {flags})"


def run_arm64(client: docker.DockerClient, image: str, argv: list[str]) -> str:
    """Run *argv* in a throw-away ``linux/arm64`` container of *image*; return its output."""
    try:
        out = client.containers.run(image, argv, remove=True, platform=PLATFORM)
    except DockerException as e:
        raise EmulationUnavailable(f"{' '.join(argv)} in {image} ({PLATFORM}) failed: {e}") from e
    return out.decode(errors="replace").strip()


def _verify_machine(client: docker.DockerClient, image: str) -> None:
    machine = run_arm64(client, image, ["uname", "-m"])
    if machine != "aarch64":
        raise EmulationUnavailable(f"uname -m in {image} ({PLATFORM}) printed {machine!r}, not aarch64")


def _import_arm64(client: docker.DockerClient, tarball: Path, tag: str, changes: tuple[str, ...]) -> None:
    """*tarball* as the ``linux/arm64`` image *tag*.

    Not ``docker import --platform``: this engine (20.10) records the host's architecture for an
    import; a ``FROM scratch`` + ``ADD`` build with ``platform`` records arm64 (and executes nothing).
    """
    (tarball.parent / "Dockerfile").write_text("FROM scratch\nADD " + tarball.name + " /\n" + "\n".join(changes) + "\n")
    (tarball.parent / ".dockerignore").write_text("*\n!" + tarball.name + "\n!Dockerfile\n")
    try:
        client.images.build(path=str(tarball.parent), tag=tag, platform=PLATFORM, rm=True, forcerm=True)
    except DockerException as e:
        raise LocalEnvError(f"importing {tarball} as {tag} ({PLATFORM}) failed: {e}") from e
    arch = client.images.get(tag).attrs.get("Architecture")
    if arch != "arm64":
        raise LocalEnvError(f"{tag} was recorded as {arch!r}, not arm64")


def ensure_arm64_base_image(client: docker.DockerClient | None = None, tag: str = ARM64_BASE_IMAGE_TAG) -> str:
    """The arm64 Debian minbase image (debootstrap under emulation + ``docker import``); returns *tag*."""
    client = client or ensure_engine()
    ensure_emulation()
    if not image_exists(client, tag):
        with file_lock(f"image-{tag}"):
            if not image_exists(client, tag):
                started = time.monotonic()
                log(f"building {tag}: debootstrap --arch=arm64 --variant=minbase {DEBIAN_SUITE} (second stage emulated)…")
                WORK_ROOT.mkdir(parents=True, exist_ok=True)
                workdir = Path(tempfile.mkdtemp(prefix="bai-rootfs-arm64.", dir=WORK_ROOT))
                try:
                    rootfs = workdir / "rootfs"
                    _build_rootfs(rootfs, DEBIAN_SUITE, DEBIAN_MIRROR, arch="arm64")
                    _import_arm64(client, _pack_rootfs(rootfs, workdir), tag, BASE_IMAGE_CHANGES)
                finally:
                    _unmount_below(workdir)
                    shutil.rmtree(workdir, ignore_errors=True)
                log(f"{tag} ready ({time.monotonic() - started:.0f}s)")
    _verify_machine(client, tag)
    return tag


#: runs in an amd64 throw-away container: fetch busybox-static:arm64 natively, lay out its applets
_BUSYBOX_SCRIPT = r"""set -e
dpkg --add-architecture arm64
apt-get update -q >/dev/null
cd /tmp && apt-get download -q busybox-static:arm64 >/dev/null
dpkg-deb -x busybox-static_*_arm64.deb /tmp/x
mkdir -p /out/rootfs/bin /out/rootfs/sbin /out/rootfs/usr/bin /out/rootfs/usr/sbin /out/rootfs/tmp
cp /tmp/x/bin/busybox /out/rootfs/bin/busybox
chmod 1777 /out/rootfs/tmp
tar --numeric-owner -C /out/rootfs -cf /out/rootfs.tar .
"""


def ensure_arm64_busybox_image(client: docker.DockerClient | None = None, tag: str = ARM64_BUSYBOX_IMAGE_TAG) -> str:
    """A scratch arm64 image with nothing but Debian's static busybox and its applet links."""
    client = client or ensure_engine()
    ensure_emulation()
    if not image_exists(client, tag):
        with file_lock(f"image-{tag}"):
            if not image_exists(client, tag):
                base = ensure_base_image(client=client)
                WORK_ROOT.mkdir(parents=True, exist_ok=True)
                workdir = Path(tempfile.mkdtemp(prefix="bai-busybox-arm64.", dir=WORK_ROOT))
                try:
                    log(f"building {tag} from Debian's busybox-static:arm64…")
                    client.containers.run(base, ["sh", "-c", _BUSYBOX_SCRIPT], remove=True,
                                          volumes={str(workdir): {"bind": "/out", "mode": "rw"}})
                    changes = ('CMD ["/bin/sh"]', "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                    _import_arm64(client, workdir / "rootfs.tar", f"{tag}-bare", changes)
                    # the applet links are made by busybox itself, under emulation (one short run)
                    cid = client.containers.create(f"{tag}-bare", ["/bin/busybox", "--install", "-s"],
                                                   platform=PLATFORM)
                    try:
                        cid.start()
                        if cid.wait(timeout=120)["StatusCode"] != 0:
                            raise EmulationUnavailable(f"busybox --install failed: {cid.logs().decode(errors='replace')}")
                        repository, _, image_tag = tag.rpartition(":")
                        cid.commit(repository=repository, tag=image_tag,
                                   conf={"Cmd": ["/bin/sh"], "Labels": {"ai.backend.kernelspec": "1",
                                         "ai.backend.runtime-type": "shell", "ai.backend.runtime-path": "/bin/sh",
                                         "ai.backend.features": "uid-match batch query"}})
                    finally:
                        cid.remove(force=True)
                        client.images.remove(f"{tag}-bare", force=True)
                except DockerException as e:
                    raise LocalEnvError(f"building {tag} failed: {e}") from e
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
    _verify_machine(client, tag)
    return tag


def ensure_arm64(client: docker.DockerClient | None = None) -> dict[str, str]:
    """Emulation enabled, both arm64 test images present and verified."""
    client = client or ensure_engine()
    state = ensure_emulation()
    log(f"arm64 emulation: {state}")
    return {"emulation": state, "debian": ensure_arm64_base_image(client), "busybox": ensure_arm64_busybox_image(client)}
