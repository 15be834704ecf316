"""``python -m imagekit.localenv prepare``: engine → base image → test images → krunner volume."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from docker.errors import DockerException

from imagekit.docker_jobs import DockerJobError

from ._common import LocalEnvError, log
from .base_image import ensure_base_image
from .engine import ensure_engine
from .krunner_dev import ensure_dev_krunner_volume
from .registry import ensure_registry_packages
from .test_images import TEST_IMAGES, ensure_test_images


@dataclass(frozen=True)
class PrepareResult:
    base_image: str
    test_images: dict[str, str]
    krunner_volume: str | None
    seconds: float


def prepare(images: Sequence[str] | None = None, *, krunner_volume: bool = True) -> PrepareResult:
    """Bring the whole local environment up; raises :class:`LocalEnvError` on failure."""
    started = time.monotonic()
    log("checking the Docker engine…")
    client = ensure_engine()
    log("ensuring the base image…")
    base = ensure_base_image(client=client)
    log(f"ensuring test images: {', '.join(TEST_IMAGES if images is None else images) or 'none'}…")
    tags = ensure_test_images(images, client=client, base_image=base)
    log("ensuring the local registry packages (docker-registry, htpasswd)…")
    ensure_registry_packages()
    volume = None
    if krunner_volume:
        log("ensuring the dev krunner volume…")
        volume = ensure_dev_krunner_volume(client=client)
    result = PrepareResult(base, tags, volume, time.monotonic() - started)
    log(f"ready in {result.seconds:.1f}s: base={base} images={','.join(tags.values())} krunner-volume={volume}")
    return result


def _parse_names(value: str) -> list[str]:
    if value.strip() == "none":
        return []
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in TEST_IMAGES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(TEST_IMAGES)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m imagekit.localenv",
        description="Prepare the local Docker environment (engine, base image, test images, dev krunner volume).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="make everything needed by the docker tests (idempotent)")
    p.add_argument("--images", type=_parse_names, default=None,
                   help=f"comma-separated test images to build, or 'none' (default: all of {','.join(TEST_IMAGES)})")
    p.add_argument("--no-krunner-volume", action="store_true", help="skip the dev krunner volume")
    sub.add_parser("prepare-arm64", help="arm64 emulation (qemu-user-static, binfmt) and the arm64 test images",
                   description="Enable QEMU user-mode emulation for arm64 (idempotent; root) and make "
                               "bai-local/debian:bookworm-arm64 and bai-local/busybox:arm64 (tests/aarch64). "
                               "Separate from prepare: the emulated debootstrap takes minutes.")
    sub.add_parser("agent-venv", help="the Python 3.13 venv with the stock Backend.AI agent from PyPI (tests/agent)")
    r = sub.add_parser("registry", help="a local docker-registry on 127.0.0.1 (plain HTTP, or TLS + basic auth)",
                       description="Start (idempotent), show or stop a local registry; start/status print it as JSON.")
    r.add_argument("action", choices=("start", "status", "stop"))
    r.add_argument("--kind", choices=("plain", "tls"), default="plain", help="plain HTTP, or TLS + htpasswd (default plain)")
    r.add_argument("--dir", default=None, metavar="DIR", help="state directory (default: $BAI_LOCALENV_REGISTRY_DIR/KIND)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "agent-venv":
        from .agent_venv import ensure_agent_venv

        try:
            print(ensure_agent_venv())
        except (LocalEnvError, OSError) as e:
            print(f"localenv: error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.command == "prepare-arm64":
        from .emulation import EmulationUnavailable, ensure_arm64

        try:
            print(ensure_arm64())
        except EmulationUnavailable as e:
            print(f"localenv: this host cannot run arm64 containers: {e}", file=sys.stderr)
            return 1
        except (DockerJobError, DockerException, OSError) as e:
            print(f"localenv: error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.command == "registry":
        from pathlib import Path

        from .registry import (
            DEFAULT_STATE_ROOT,
            ensure_registry,
            is_healthy,
            read_registry,
            stop_registry,
        )

        directory = Path(args.dir) if args.dir else DEFAULT_STATE_ROOT / args.kind
        try:
            if args.action == "start":
                print(ensure_registry(args.kind, directory).model_dump_json(indent=2))
            elif args.action == "stop":
                stop_registry(directory)
            else:
                current = read_registry(directory)
                if current is None or not is_healthy(current):
                    print(f"localenv: no healthy registry in {directory}", file=sys.stderr)
                    return 1
                print(current.model_dump_json(indent=2))
        except (LocalEnvError, OSError) as e:
            print(f"localenv: error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.command == "prepare":
        try:
            prepare(args.images, krunner_volume=not args.no_krunner_volume)
        except (DockerJobError, DockerException, OSError) as e:
            first = str(e).strip().splitlines()
            detail = "\n".join(first[1:])
            if detail:
                print(detail, file=sys.stderr)
            print(f"localenv: error: {first[0] if first else type(e).__name__}", file=sys.stderr)
            return 2
        return 0
    return 2
