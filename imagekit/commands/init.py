"""``bai-imagekit init DIR``: scaffold a kernel directory that builds and validates clean.

Creates ``Dockerfile`` (``ARG BASE_IMAGE``), ``kernel.toml``, ``service-defs/hello.json`` (a
sample service) and ``policy.yml`` (the default jail policy).
"""

from __future__ import annotations

import argparse
import json
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


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    written = scaffold(directory, args.runtime, list(dict.fromkeys(args.service)), args.force)
    for path in written:
        progress(f"wrote {path}")
    print(f"Scaffolded {directory}. Next: bai-imagekit build {directory} -t my-kernel:latest")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "init",
        help="scaffold a kernel directory (Dockerfile, kernel.toml, service-defs/, policy.yml)",
        description="Create a kernel directory that `bai-imagekit build` turns into a valid kernel image.",
    )
    p.add_argument("dir", metavar="DIR", help="directory to create (or fill)")
    p.add_argument("--runtime", default="python", choices=sorted(RUNTIMES), help="ai.backend.runtime-type (default python)")
    p.add_argument("--service", action="append", default=[], metavar="NAME", help="add a library service, e.g. jupyterlab (repeatable)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(handler=run)
