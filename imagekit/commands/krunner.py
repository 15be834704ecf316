"""``bai-imagekit krunner build|install``: the self-contained krunner bundle and its Docker volume."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import EnvironmentProblem, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from imagekit.bundle import DEFAULT_OUTPUT_DIR, tarball_name, volume_name

    p = sub.add_parser(
        "krunner", help="build the self-contained krunner bundle and install it as a Docker volume",
        description="The krunner bundle: a relocatable CPython 3.11 with krunner and every shared library it "
        "needs (incl. the dynamic loader), started by a static launcher, so it runs in any x86-64 image "
        "(no python, no libc, no shell required). See docs/krunner-volume.md.",
    )
    ksub = p.add_subparsers(dest="krunner_command", metavar="SUBCOMMAND")
    b = ksub.add_parser(
        "build", help="build the bundle tarball, its manifest and the /opt/kernel tools",
        description=f"Assemble {tarball_name()} (plus the manifest JSON and kernel/) inside a builder container "
        "made from the local base image. Skipped when the inputs (krunner sources, builder, requirements) "
        "are unchanged. Progress goes to stderr; the tarball path is printed on stdout.",
    )
    b.add_argument("--output", "-o", type=Path, default=None, metavar="DIR",
                   help=f"output directory (default: {DEFAULT_OUTPUT_DIR})")
    b.add_argument("--force", action="store_true", help="rebuild even if the inputs are unchanged")
    b.set_defaults(handler=run_build)
    i = ksub.add_parser(
        "install", help="create or repair the Docker volume from a bundle tarball",
        description=f"Create the volume {volume_name(0).replace('v0', 'v<N>')} (idempotent; N comes from the "
        "bundle's content) and extract the bundle into it. An existing "
        "volume is verified against the bundle's manifest (sha256, modes, no extra files, VERSION marker) "
        "and repaired if it differs. Builds the bundle first when no --tarball is given. "
        "Prints the volume name on stdout.",
    )
    i.add_argument("--tarball", type=Path, default=None, metavar="FILE",
                   help=f"a {tarball_name()} (default: build into {DEFAULT_OUTPUT_DIR} and use that)")
    i.add_argument("--volume", default=None, metavar="NAME", help="volume name (default: from the manifest)")
    i.add_argument("--force", action="store_true", help="re-extract even if the volume verifies")
    i.add_argument("--stock", action="store_true",
                   help="instead: install upstream's runner as a stock Backend.AI 26.9 agent deploys it (downloads "
                   "backend.ai-krunner-static-gnu 4.4.0, backend.ai-kernel(-helper) and backend.ai-kernel-binary "
                   "26.9.6 from PyPI into the cache, creates backendai-krunner.v14.x86_64.static-gnu), for "
                   "`bai-imagekit test --runner stock`")
    i.set_defaults(handler=run_install)
    k = ksub.add_parser(
        "package", help="package the bundle as a wheel for a stock Backend.AI agent",
        description="Write a wheel that an operator installs into a Backend.AI agent's environment. It "
        "replaces the stock backend.ai-krunner-static-gnu (same distribution, version <base>+bai.v<N>), so the "
        "agent's own prepare_krunner_env() creates our volume backendai-krunner.v<N>.<arch>.static-gnu at its "
        "next start. Builds the bundle first when no --tarball is given. Prints the wheel path on stdout. "
        "See docs/krunner-volume.md.",
    )
    k.add_argument("--tarball", type=Path, default=None, metavar="FILE",
                   help=f"a {tarball_name()} (default: build into {DEFAULT_OUTPUT_DIR} and use that)")
    k.add_argument("--output", "-o", type=Path, default=Path("dist"), metavar="DIR",
                   help="where to write the wheel (default: ./dist)")
    k.add_argument("--base-version", default=None, metavar="X.Y.Z",
                   help="the stock backend.ai-krunner-static-gnu version the agent pins (default: 4.4.0, "
                   "what backend.ai-agent 26.9.x requires)")
    k.set_defaults(handler=run_package)
    p.set_defaults(handler=lambda args: _no_subcommand(p))


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _errors():
    from docker.errors import DockerException

    from imagekit.bundle.manifest import ManifestError
    from imagekit.localenv._common import LocalEnvError

    return LocalEnvError, DockerException, ManifestError


def run_build(args: argparse.Namespace) -> int:
    from imagekit.bundle.build import SIZE_TARGET_BYTES, build_bundle

    if args.output is not None and args.output.exists() and not args.output.is_dir():
        raise UsageError(f"--output {args.output} is not a directory")
    local_env_error, docker_error, _ = _errors()
    try:
        result = build_bundle(args.output, force=args.force)
    except (local_env_error, docker_error, OSError) as exc:
        raise EnvironmentProblem(str(exc)) from exc
    size = result.size
    note = "" if size <= SIZE_TARGET_BYTES else f" (over the {SIZE_TARGET_BYTES // 2**20} MiB target)"
    print(f"krunner bundle: {result.tarball} {size / 2**20:.1f} MiB compressed{note}, "
          f"{result.manifest.total_size() / 2**20:.1f} MiB unpacked, {len(result.manifest.files)} entries, "
          f"version {result.manifest.version}{' (cached)' if result.cached else ''}", file=sys.stderr)
    print(result.tarball)
    return 0 if size <= SIZE_TARGET_BYTES else 1


def _given_or_built_tarball(tarball: Path | None) -> Path:
    if tarball is not None:
        if not tarball.is_file():
            raise UsageError(f"--tarball {tarball} does not exist")
        return tarball
    from imagekit.bundle.build import build_bundle

    return build_bundle().tarball


def run_package(args: argparse.Namespace) -> int:
    from imagekit.bundle.agent_package import DEFAULT_BASE_VERSION, build_agent_package

    local_env_error, docker_error, manifest_error = _errors()
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"--output {args.output} is not a directory")
    base = args.base_version or DEFAULT_BASE_VERSION
    if not all(part.isdigit() for part in base.split(".")):
        raise UsageError(f"--base-version {base!r} is not a release number such as 4.4.0")
    try:
        tarball = _given_or_built_tarball(args.tarball)
        package = build_agent_package(tarball, args.output, base_version=base)
    except manifest_error as exc:
        raise UsageError(f"{args.tarball}: not a usable krunner bundle: {exc}") from exc
    except (local_env_error, docker_error, OSError, ValueError) as exc:
        raise EnvironmentProblem(str(exc)) from exc
    print(f"agent package: {package.wheel.name} (volume {package.volume}; the agent mounts its own runner "
          f"under lib/python{package.agent_python}, which krunner never reads)", file=sys.stderr)
    print(package.wheel)
    return 0


def run_stock_install() -> int:
    from imagekit.bundle.stock import install_stock_runner

    local_env_error, docker_error, _ = _errors()
    try:
        runner = install_stock_runner()
    except (local_env_error, docker_error, OSError, RuntimeError) as exc:
        raise EnvironmentProblem(str(exc)) from exc
    print(f"stock runner: volume {runner.volume}, runner packages and /opt/kernel tools in {runner.root}",
          file=sys.stderr)
    print(runner.volume)
    return 0


def run_install(args: argparse.Namespace) -> int:
    from imagekit.bundle.volume import install_volume

    if args.stock:
        if args.tarball or args.volume or args.force:
            raise UsageError("--stock takes no --tarball, --volume or --force")
        return run_stock_install()
    local_env_error, docker_error, manifest_error = _errors()
    tarball = args.tarball
    try:
        tarball = _given_or_built_tarball(tarball)
        result = install_volume(tarball, name=args.volume, force=args.force)
    except manifest_error as exc:
        raise UsageError(f"{tarball}: not a usable krunner bundle: {exc}") from exc
    except (local_env_error, docker_error, OSError) as exc:
        message = str(exc)
        if "does not match the manifest after extraction" in message:
            print(f"bai-imagekit: error: {message}", file=sys.stderr)
            return 1
        raise EnvironmentProblem(message) from exc
    print(f"krunner volume {result.volume}: {result.action} ({result.seconds:.1f}s)", file=sys.stderr)
    print(result.volume)
    return 0
