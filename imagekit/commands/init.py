"""``bai-imagekit init DIR``: scaffold a kernel directory that builds and validates clean.

Creates ``Dockerfile`` (``ARG BASE_IMAGE``), ``kernel.toml``, ``service-defs/hello.json`` (a
sample service) and ``policy.yml`` (the default jail policy).

``bai-imagekit init --from IMAGE [DIR]`` adopts an existing local image instead: it surveys the
image without starting it (:mod:`imagekit.adopt`), prints what it found, and with DIR writes a
``kernel.toml`` and a ``Dockerfile`` (``FROM`` the image) that explain each choice in comments
(:mod:`imagekit.adopt_files`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..console import progress
from ..errors import UsageError
from ..kernelspec import LIBRARY_PORTS, library_names

DEFAULT_BASE = "debian:bookworm-slim"
SAMPLE_SERVICE, SAMPLE_PORT = "hello", 8080


@dataclass(frozen=True)
class Runtime:
    packages: str  # Debian packages that provide it
    path: str | None  # ai.backend.runtime-path
    features: tuple[str, ...]


RUNTIMES: dict[str, Runtime] = {
    "python": Runtime("python3", "/usr/bin/python3", ("batch", "query", "uid-match", "user-input")),
    "shell": Runtime("bash", "/bin/bash", ("batch", "query", "uid-match")),
    "app": Runtime("", None, ("uid-match",)),
    "nodejs": Runtime("nodejs", "/usr/bin/node", ("batch", "query", "uid-match")),
    "c": Runtime("gcc libc6-dev", "/usr/bin/gcc", ("batch", "query", "uid-match")),
}

#: what a library service needs installed (a hint written into the Dockerfile)
SERVICE_NEEDS = {
    "jupyter": "the `notebook` package in the runtime-path interpreter",
    "jupyterlab": "the `jupyterlab` package in the runtime-path interpreter",
    "tensorboard": "the `tensorboard` package in the runtime-path interpreter",
    "code-server": "code-server at /usr/local/bin/code-server",
    "mlflow-ui": "`mlflow` on PATH",
    "filebrowser": "File Browser at /usr/local/bin/filebrowser",
    "vnc-web": "noVNC in /opt/noVNC and a VNC server on :5901 started by /opt/container/bootstrap.sh",
}


def dockerfile_text(runtime: str, services: list[str]) -> str:
    rt = RUNTIMES[runtime]
    packages = " ".join(dict.fromkeys(f"{rt.packages} python3".split()))
    lines = [
        "# Backend.AI kernel image, scaffolded by `bai-imagekit init`.",
        "# Build it with `bai-imagekit build . -t NAME:TAG`: labels, service-defs and the jail policy",
        "# come from kernel.toml and are added as the last layer, so do not COPY or LABEL them here.",
        f"ARG BASE_IMAGE={DEFAULT_BASE}",
        "FROM ${BASE_IMAGE}",
        "",
        f"# {runtime} runtime; python3 also serves the sample service ({SAMPLE_SERVICE}, remove it with the service)",
        "RUN apt-get update \\",
        f" && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\",
        " && apt-get clean \\",
        " && rm -rf /var/lib/apt/lists/*",
    ]
    for name in services:
        lines.append(f"# service {name}: install {SERVICE_NEEDS.get(name, 'what its service-def runs')}")
    return "\n".join(lines) + "\n"


def kernel_toml_text(runtime: str, services: list[str]) -> str:
    rt = RUNTIMES[runtime]
    features = ", ".join(json.dumps(f) for f in rt.features)
    out = [
        "# Kernel spec read by `bai-imagekit build`; schema: imagekit/schemas/kernel-spec.schema.json",
        "[kernel]",
        f'runtime-type = "{runtime}"',
    ]
    if rt.path:
        out.append(f'runtime-path = "{rt.path}"')
    if runtime not in ("python", "app"):
        out.append(f'runner = "krunner"   # {runtime} has a REPL in krunner only; stock Backend.AI runs python and app')
    out += [
        f"features = [{features}]",
        '# base-distro = "ubuntu22.04"   # set it when building FROM ubuntu/centos (spares the agent an ldd probe)',
        'corecount-envs = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NPROC"]',
        "",
        "[resources]",
        "min.cpu = 1",
        'min.mem = "256m"',
        "",
        "[services]",
        f'{SAMPLE_SERVICE} = {{ port = {SAMPLE_PORT}, protocol = "http" }}   # def: service-defs/{SAMPLE_SERVICE}.json',
    ]
    out += [f"{name} = {{ library = true }}   # def from the service-def library" for name in services]
    if not services:
        out.append("# jupyterlab = { library = true }   # a def from the service-def library")
    out += ["", "[policy]", 'file = "policy.yml"   # or: default = true', ""]
    return "\n".join(out)


def sample_def_text(runtime: str) -> str:
    exe = "{runtime_path}" if runtime == "python" else "/usr/bin/python3"
    definition = {
        "command": [exe, "-m", "http.server", "--bind", "0.0.0.0", "--directory", "/home/work", "{ports[0]}"],
    }
    return json.dumps(definition, indent=2) + "\n"


def policy_text() -> str:
    from ..policy import default_policy, dump_policy

    return dump_policy(default_policy())


def scaffold(directory: Path, runtime: str, services: list[str], force: bool = False) -> list[Path]:
    """Write the kernel directory; returns the files written."""
    if runtime not in RUNTIMES:
        raise UsageError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    known = library_names()
    for name in services:
        if name not in known:
            raise UsageError(f"--service {name!r}: not in the service-def library (known: {', '.join(known) or 'none'})")
        if name not in LIBRARY_PORTS:
            raise UsageError(f"--service {name!r} has no default port; add it to kernel.toml by hand")
    files = {
        "Dockerfile": dockerfile_text(runtime, services),
        "kernel.toml": kernel_toml_text(runtime, services),
        f"service-defs/{SAMPLE_SERVICE}.json": sample_def_text(runtime),
        "policy.yml": policy_text(),
    }
    existing = [name for name in files if (directory / name).exists()]
    if existing and not force:
        raise UsageError(f"{directory} already has {', '.join(existing)}; use --force to overwrite")
    written = []
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def adopt(args: argparse.Namespace) -> int:
    """``init --from IMAGE [DIR]``: survey the image; with DIR, write kernel.toml and Dockerfile."""
    from ..adopt import survey
    from ..adopt_files import decide, dockerfile_text, survey_text
    from ..adopt_files import kernel_toml_text as adopted_toml
    from ..engine import connect

    if args.runtime is not None:
        raise UsageError("--runtime does not apply to --from: the runtime is detected from the image")
    known = library_names()
    for name in args.service:
        if name not in known:
            raise UsageError(f"--service {name!r}: not in the service-def library (known: {', '.join(known) or 'none'})")
    directory = Path(args.dir) if args.dir else None
    files = ("kernel.toml", "Dockerfile")
    if directory is not None and not args.force:
        existing = [name for name in files if (directory / name).exists()]
        if existing:
            raise UsageError(f"{directory} already has {', '.join(existing)}; use --force to overwrite")
    progress(f"surveying {args.from_image} (read from its files, not started)…")
    found = survey(connect(), args.from_image)
    choices = decide(found, list(dict.fromkeys(args.service)))
    if args.format == "json":
        print(json.dumps({"survey": found.model_dump(mode="json"), "choices": {
            "runtime-type": choices.runtime_type, "runtime-path": choices.runtime_path,
            "base-distro": choices.base_distro, "services": [a.service for a in choices.services],
        }, "written": [str(directory / n) for n in files] if directory else []}, indent=2))
    else:
        sys.stdout.write(survey_text(found, choices))
    if directory is None:
        return 0
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kernel.toml").write_text(adopted_toml(found, choices), encoding="utf-8")
    (directory / "Dockerfile").write_text(dockerfile_text(found), encoding="utf-8")
    for name in files:
        progress(f"wrote {directory / name}")
    if args.format == "text":
        print(f"Adopted {args.from_image} in {directory}. Next: bai-imagekit build {directory} -t my-kernel:latest")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.from_image:
        return adopt(args)
    if args.dir is None:
        raise UsageError("DIR is required (or --from IMAGE to adopt an existing image)")
    if args.format != "text":
        raise UsageError("--format applies to --from only")
    directory = Path(args.dir)
    written = scaffold(directory, args.runtime or "python", list(dict.fromkeys(args.service)), args.force)
    for path in written:
        progress(f"wrote {path}")
    print(f"Scaffolded {directory}. Next: bai-imagekit build {directory} -t my-kernel:latest")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "init",
        help="scaffold a kernel directory (Dockerfile, kernel.toml, service-defs/, policy.yml), or adopt an image",
        description="Create a kernel directory that `bai-imagekit build` turns into a valid kernel image. "
        "With --from IMAGE, adopt an existing local image instead: survey it without starting it (distro and "
        "libc and what the agent concludes, Python and conda, CUDA, entrypoint and Cmd, users, apps the "
        "service-def library knows), print the survey, and with DIR write a kernel.toml and Dockerfile that "
        "explain each choice in comments.",
        epilog="examples:\n  bai-imagekit init mykernel --service jupyterlab\n"
        "  bai-imagekit init --from nvcr.io/nvidia/pytorch:24.05-py3            # survey only\n"
        "  bai-imagekit init --from vllm/vllm-openai:latest adopted --format json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", metavar="DIR", nargs="?", help="directory to create (or fill); optional with --from")
    p.add_argument("--from", dest="from_image", metavar="IMAGE",
                   help="adopt this image (it must be on the local Docker engine; it is never started)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="how --from prints its survey (default text)")
    p.add_argument("--runtime", default=None, choices=sorted(RUNTIMES), help="ai.backend.runtime-type (default python)")
    p.add_argument("--service", action="append", default=[], metavar="NAME", help="add a library service, e.g. jupyterlab (repeatable)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(handler=run)
