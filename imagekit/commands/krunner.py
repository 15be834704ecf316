"""``bai-imagekit krunner build|install|package``: the self-contained krunner bundle, its Docker volume
and the agent package.

``build`` is the only command that builds the bundle; ``install`` and ``package`` use what it left in
the bundle directory (or ``--tarball FILE``) and say so when there is nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import EnvironmentProblem, UsageError

BASE_IMAGE_HELP = ("a Debian 12 (bookworm) image for the {what} (default: $BAI_IMAGEKIT_BASE_IMAGE, else "
                   "debian:bookworm, pulled if the engine does not have it)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from imagekit.bundle import ARCH, ARCHES, BUNDLE_DIR_ENV, tarball_name, volume_name

    arch_help = (f"the bundle's architecture: {' or '.join(ARCHES)} (default: this host's, {ARCH}); "
                 "aarch64 is cross-built on an x86_64 host from Debian's arm64 packages")

    default_dir = f"${BUNDLE_DIR_ENV}, else $XDG_CACHE_HOME/bai-imagekit/krunner-bundle"
    p = sub.add_parser(
        "krunner", help="build the self-contained krunner bundle and install it as a Docker volume",
        description="The krunner bundle: a relocatable CPython 3.11 with krunner and every shared library it "
        "needs (incl. the dynamic loader), started by a static launcher, so it runs in any x86-64 (or, built with "
        "--arch aarch64, any arm64) image "
        "(no python, no libc, no shell required). `bai-imagekit test` and `run` need it built and installed: "
        "`bai-imagekit krunner build`, then `bai-imagekit krunner install`. See docs/krunner-volume.md.",
    )
    ksub = p.add_subparsers(dest="krunner_command", metavar="SUBCOMMAND")
    b = ksub.add_parser(
        "build", help="build the bundle tarball, its manifest and the /opt/kernel tools",
        description=f"Assemble {tarball_name()} (plus the manifest JSON and kernel/) inside a builder container "
        "made from a Debian 12 base image, from the installed krunner package. Skipped when the inputs "
        "(krunner sources, builder, requirements, web terminal assets) are unchanged. The web terminal assets "
        "(xterm.js) are fetched with npm into the user's cache unless --webterm-assets is given; pip in the "
        "build container reaches PyPI. Progress goes to stderr; the tarball path is printed on stdout.",
    )
    b.add_argument("--output", "-o", type=Path, default=None, metavar="DIR",
                   help=f"output directory (default: {default_dir})")
    b.add_argument("--base-image", default=None, metavar="IMAGE", help=BASE_IMAGE_HELP.format(what="builder image"))
    b.add_argument("--webterm-assets", type=Path, default=None, metavar="DIR",
                   help="a directory with the web terminal assets (xterm.js, xterm.css, addon-fit.js and VERSIONS.json) "
                   "instead of fetching them with npm")
    b.add_argument("--ca-bundle", metavar="FILE|auto",
                   help="CA bundle for pip in the build container behind a TLS-intercepting proxy, bind-mounted "
                   "read-only and never kept in the bundle (default $BAI_IMAGEKIT_CA_BUNDLE, else the file $PIP_CERT "
                   "names; auto = $SSL_CERT_FILE or $REQUESTS_CA_BUNDLE)")
    b.add_argument("--force", action="store_true", help="rebuild even if the inputs are unchanged")
    b.add_argument("--arch", choices=ARCHES, default=ARCH, help=arch_help)
    b.set_defaults(handler=run_build)
    i = ksub.add_parser(
        "install", help="create or repair the Docker volume from the built bundle",
        description=f"Create the volume {volume_name(0).replace('v0', 'v<N>')} (idempotent; N comes from the "
        "bundle's content) and extract the bundle into it. An existing "
        "volume is verified against the bundle's manifest (sha256, modes, no extra files, VERSION marker) "
        "and repaired if it differs. Uses the bundle `krunner build` made unless --tarball is given. "
        "Prints the volume name on stdout.",
    )
    _add_tarball_option(i, default_dir)
    i.add_argument("--volume", default=None, metavar="NAME", help="volume name (default: from the manifest)")
    i.add_argument("--base-image", default=None, metavar="IMAGE", help=BASE_IMAGE_HELP.format(what="helper containers"))
    i.add_argument("--force", action="store_true", help="re-extract even if the volume verifies")
    i.add_argument("--arch", choices=ARCHES, default=ARCH,
                   help=f"which built bundle to install when no --tarball is given (default: {ARCH})")
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
        "next start. Uses the bundle `krunner build` made unless --tarball is given. Prints the wheel path on "
        "stdout. See docs/krunner-volume.md.",
    )
    _add_tarball_option(k, default_dir)
    k.add_argument("--output", "-o", type=Path, default=Path("dist"), metavar="DIR",
                   help="where to write the wheel (default: ./dist)")
    k.add_argument("--base-version", default=None, metavar="X.Y.Z",
                   help="the stock backend.ai-krunner-static-gnu version the agent pins (default: 4.4.0, "
                   "what backend.ai-agent 26.9.x requires)")
    k.add_argument("--arch", choices=ARCHES, default=ARCH,
                   help=f"which built bundle to package when no --tarball is given (default: {ARCH}); the wheel's "
                   "platform tag follows the bundle (manylinux2014_x86_64 or manylinux2014_aarch64)")
    k.set_defaults(handler=run_package)
    p.set_defaults(handler=lambda args: _no_subcommand(p))


def _add_tarball_option(parser: argparse.ArgumentParser, default_dir: object) -> None:
    from imagekit.bundle import tarball_name

    parser.add_argument("--tarball", type=Path, default=None, metavar="FILE",
                        help=f"a {tarball_name()} (default: the one in {default_dir})")


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _errors():
    from docker.errors import DockerException

    from imagekit.bundle.manifest import ManifestError
    from imagekit.docker_jobs import DockerJobError

    return DockerJobError, DockerException, ManifestError


def _client():
    from imagekit.engine import connect

    return connect()


def run_build(args: argparse.Namespace) -> int:
    from imagekit.bundle import EmulationUnavailable
    from imagekit.bundle.bundle_build import (
        SIZE_TARGET_BYTES,
        build_bundle,
        pip_cert_from_environment,
    )
    from imagekit.bundle.webterm_assets import is_complete
    from imagekit.image_build import resolve_ca_bundle

    if args.output is not None and args.output.exists() and not args.output.is_dir():
        raise UsageError(f"--output {args.output} is not a directory")
    if args.webterm_assets is not None and not is_complete(args.webterm_assets):
        raise UsageError(f"--webterm-assets {args.webterm_assets}: not a complete assets directory (xterm.js, "
                         "xterm.css, addon-fit.js and the VERSIONS.json of the pinned versions)")
    ca_bundle = resolve_ca_bundle(args.ca_bundle) or pip_cert_from_environment()
    job_error, docker_error, _ = _errors()
    client = _client()
    from imagekit.console import task

    try:
        with task("krunner build"):  # the build's progress lines: a live line with the elapsed time on a TTY
            result = build_bundle(args.output, client=client, base_image=args.base_image,
                                  webterm_assets=args.webterm_assets, ca_bundle=ca_bundle, force=args.force,
                                  arch=args.arch)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    except (job_error, docker_error, OSError, EmulationUnavailable) as exc:
        raise EnvironmentProblem(str(exc)) from exc
    size = result.size
    note = "" if size <= SIZE_TARGET_BYTES else f" (over the {SIZE_TARGET_BYTES // 2**20} MiB target)"
    print(f"krunner bundle: {result.tarball} {size / 2**20:.1f} MiB compressed{note}, "
          f"{result.manifest.total_size() / 2**20:.1f} MiB unpacked, {len(result.manifest.files)} entries, "
          f"version {result.manifest.version}{' (cached)' if result.cached else ''}", file=sys.stderr)
    print(result.tarball)
    return 0 if size <= SIZE_TARGET_BYTES else 1


def _given_or_built_tarball(tarball: Path | None, arch: str | None = None) -> Path:
    """``--tarball FILE``, else the tarball ``krunner build`` left in the bundle directory (never built here)."""
    if tarball is not None:
        if not tarball.is_file():
            raise UsageError(f"--tarball {tarball} does not exist")
        return tarball
    from imagekit.bundle import ARCH, default_output_dir, tarball_name

    built = default_output_dir() / tarball_name(arch=arch or ARCH)
    if not built.is_file():
        flag = "" if arch in (None, ARCH) else f" --arch {arch}"
        raise EnvironmentProblem(f"no krunner bundle: {built} is missing. Run `bai-imagekit krunner build{flag}` "
                                 "first (or give --tarball FILE)")
    return built


def run_package(args: argparse.Namespace) -> int:
    from imagekit.bundle.agent_package import DEFAULT_BASE_VERSION, build_agent_package

    job_error, docker_error, manifest_error = _errors()
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"--output {args.output} is not a directory")
    base = args.base_version or DEFAULT_BASE_VERSION
    if not all(part.isdigit() for part in base.split(".")):
        raise UsageError(f"--base-version {base!r} is not a release number such as 4.4.0")
    tarball = _given_or_built_tarball(args.tarball, args.arch)
    try:
        package = build_agent_package(tarball, args.output, base_version=base)
    except manifest_error as exc:
        raise UsageError(f"{tarball}: not a usable krunner bundle: {exc}") from exc
    except (job_error, docker_error, OSError, ValueError) as exc:
        raise EnvironmentProblem(str(exc)) from exc
    print(f"agent package: {package.wheel.name} (volume {package.volume}; the agent mounts its own runner "
          f"under lib/python{package.agent_python}, which krunner never reads)", file=sys.stderr)
    print(package.wheel)
    return 0


def run_stock_install(base_image: str | None) -> int:
    from imagekit.bundle.stock import install_stock_runner

    job_error, docker_error, _ = _errors()
    client = _client()
    try:
        runner = install_stock_runner(client=client, base_image=base_image)
    except (job_error, docker_error, OSError, RuntimeError) as exc:
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
        return run_stock_install(args.base_image)
    job_error, docker_error, manifest_error = _errors()
    tarball = _given_or_built_tarball(args.tarball, args.arch)
    client = _client()
    try:
        result = install_volume(tarball, client=client, base_image=args.base_image, name=args.volume,
                                force=args.force)
    except manifest_error as exc:
        raise UsageError(f"{tarball}: not a usable krunner bundle: {exc}") from exc
    except (job_error, docker_error, OSError) as exc:
        message = str(exc)
        if "does not match the manifest after extraction" in message:
            print(f"bai-imagekit: error: {message}", file=sys.stderr)
            return 1
        raise EnvironmentProblem(message) from exc
    print(f"krunner volume {result.volume}: {result.action} ({result.seconds:.1f}s)", file=sys.stderr)
    print(result.volume)
    return 0
