"""``init --from``: an :class:`~imagekit.adopt.ImageSurvey` → ``kernel.toml`` + ``Dockerfile`` (+ the survey as text).

Every choice is a comment that says what was found and why it was chosen, so the author can
review the adoption line by line. The Dockerfile starts ``FROM`` the adopted image (``ARG
BASE_IMAGE``); labels, service-defs and the jail policy come from ``kernel.toml`` and are added by
``bai-imagekit build`` as the last layer, as for a scaffolded kernel.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TextIO

from .adopt import (
    AppMatch,
    ImageSurvey,
    PythonFound,
    family_supported,
    replaced_startup,
)
from .console import paint
from .kernelspec import LIBRARY_PORTS, library_names

PYTHON_FEATURES = ("batch", "query", "uid-match", "user-input")
APP_FEATURES = ("uid-match",)
CORECOUNT_ENVS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NPROC")


@dataclass
class Choices:
    """What the adoption decides, each with the comment that explains it."""

    runtime_type: str
    runtime_path: str | None
    runtime_why: list[str]
    base_distro: str | None
    distro_why: list[str]
    services: list[AppMatch]
    services_why: list[str] = field(default_factory=list)
    cuda_why: list[str] = field(default_factory=list)


def _describe_python(p: PythonFound) -> str:
    where = "a conda install" if p.source == "conda" else "the image's PATH"
    real = f" -> {p.real_path}" if p.real_path != p.path else ""
    return f"{p.path}{real} ({p.version or 'version unknown'}) in {where}"


def choose_python(survey: ImageSurvey) -> tuple[PythonFound | None, str]:
    """The interpreter for ai.backend.runtime-path and why: the one that has the apps, else the first on PATH."""
    if not survey.pythons:
        return None, ""
    with_apps = [p for p in survey.pythons if p.modules]
    if with_apps:
        chosen = with_apps[0]
        return chosen, f"it has {', '.join(chosen.modules)}, which the {{runtime_path}} services run"
    return survey.pythons[0], "it is the first python on the image's PATH (what `python3` runs in a terminal)"


def decide(survey: ImageSurvey, extra_services: list[str] = ()) -> Choices:
    chosen, why = choose_python(survey)
    runtime_why = [f"python: {_describe_python(p)} found" + ("; chosen because " + why if p is chosen else "")
                   for p in survey.pythons]  # fmt: skip
    for env in survey.conda:
        runtime_why.append(f"conda: {env.executable} (prefix {env.prefix})")
    if chosen is None:
        runtime_why.append("no python found: an 'app' kernel (services, terminal, ssh; no query/batch mode)")
    d = survey.distro
    distro_why = [
        f"distro: /etc/os-release says {d.os_release or 'nothing'}" + (f" ({d.pretty_name})" if d.pretty_name else "")
        + f"; C library {d.libc or 'unknown'}",
        f"without a label the agent would use {d.agent_distro or 'nothing (session creation fails)'}"
        + (f": {d.agent_probe}" if d.agent_probe else ""),
    ]
    if d.label:
        base, reason = d.label, f"kept the image's own label {d.label}"
    elif family_supported(d.os_release):
        base, reason = d.os_release, f"pinned to the os-release value: the agent has {d.os_release} artifacts"
    elif d.agent_distro:
        family = (d.os_release or "this distro").rstrip("0123456789.")
        base, reason = d.agent_distro, (f"{family} is not a family the agent ships artifacts for, so the label pins "
                                        "what its probe concludes anyway (and spares the probe)")  # fmt: skip
    else:
        base, reason = None, "not set: nothing identifies the C library; set it by hand"
    distro_why.append(reason)
    services = list(survey.apps)
    services_why = [f"{a.service}: {a.evidence} -> the library's {a.service} def (port {LIBRARY_PORTS.get(a.service)})"
                    for a in services]  # fmt: skip
    for app in services:
        if app.interpreter and chosen is not None and app.interpreter != chosen.path:
            services_why.append(f"note: {app.service} runs {{runtime_path}} -m …, but its package is in "
                                f"{app.interpreter}, not {chosen.path}; copy the def and hard-code the interpreter")
    known = set(library_names())
    for name in extra_services:
        if name not in {a.service for a in services} and name in known:
            services.append(AppMatch(service=name, evidence="asked for with --service"))
            services_why.append(f"{name}: asked for with --service (not detected in the image)")
    cuda_why = []
    if survey.cuda is not None:
        cuda_why = [f"cuda: {e}" for e in survey.cuda.evidence]
        cuda_why.append("min.cuda.device = 1 asks for a GPU (0 would make it optional); cuda.shares for the "
                        "fractional-GPU plugin")  # fmt: skip
    return Choices(
        runtime_type="python" if chosen else "app",
        runtime_path=chosen.path if chosen else None,
        runtime_why=runtime_why,
        base_distro=base,
        distro_why=distro_why,
        services=services,
        services_why=services_why,
        cuda_why=cuda_why,
    )


def _comments(lines: list[str]) -> list[str]:
    return [f"# {line}" for line in lines]


def kernel_toml_text(survey: ImageSurvey, choices: Choices) -> str:
    features = PYTHON_FEATURES if choices.runtime_type == "python" else APP_FEATURES
    out = [
        f"# Kernel spec adopting {survey.image} ({survey.image_id[:19]}), written by `bai-imagekit init --from`.",
        "# Each choice says what the image holds and why it was chosen; read by `bai-imagekit build`.",
        "[kernel]",
        *_comments(choices.runtime_why),
        f'runtime-type = "{choices.runtime_type}"',
    ]
    if choices.runtime_path:
        out.append(f'runtime-path = "{choices.runtime_path}"')
    out.append(f"features = [{', '.join(json.dumps(f) for f in features)}]")
    out += _comments(choices.distro_why)
    out.append(f'base-distro = "{choices.base_distro}"' if choices.base_distro else '# base-distro = "ubuntu22.04"')
    if survey.cuda is not None:
        out.append('accelerators = ["cuda"]   # CUDA ' + (survey.cuda.version or "(version unknown)"))
    out.append(f"corecount-envs = [{', '.join(json.dumps(e) for e in CORECOUNT_ENVS)}]")
    out += ["", "[resources]", "min.cpu = 1", f'min.mem = "{"1g" if survey.cuda else "256m"}"']
    if survey.cuda is not None:
        out += _comments(choices.cuda_why)
        out += ["min.cuda.device = 1", "min.cuda.shares = 0.1"]
    out += ["", "[services]"]
    out += _comments(choices.services_why)
    out += [f"{a.service} = {{ library = true }}" for a in choices.services]
    if not choices.services:
        out.append("# no app of the service-def library found; e.g. jupyterlab = { library = true }")
    out += ["", "[policy]", "default = true   # imagekit's default jail policy", ""]
    return "\n".join(out)


def dockerfile_text(survey: ImageSurvey) -> str:
    out = [
        f"# Adopts {survey.image} as a Backend.AI kernel (written by `bai-imagekit init --from`).",
        "# Build it with `bai-imagekit build DIR -t NAME:TAG`: labels, service-defs and the jail policy come",
        "# from kernel.toml and are added as the last layer, so do not COPY or LABEL them here.",
        f"ARG BASE_IMAGE={survey.image}",
        "FROM ${BASE_IMAGE}",
    ]
    config = survey.config
    if replaced_startup(config):
        out += ["", f"# entrypoint: {json.dumps(config.entrypoint)}, cmd: {json.dumps(config.cmd)}: the agent replaces "
                "both with", "# /opt/kernel/entrypoint.sh and its runner, so they are left as they are (unused)."]
        if config.entrypoint and config.entrypoint_chains is False:
            out += [f"# warning: {config.entrypoint[0]} does not exec \"$@\"; move the set-up it does into ENV lines",
                    "# or /opt/container/bootstrap.sh (the agent's entrypoint sources it as root)."]
    if config.user and config.user.split(":")[0] not in ("0", "root"):
        out += ["", f"# user: the image runs as {config.user}; the agent's entrypoint creates the session user",
                "# and must start as root (it drops to that user itself).", "USER root"]
    users = [u for u in survey.users if 1000 <= u.uid < 65534]
    if users:
        out += ["", "# users: " + ", ".join(f"{u.name} (uid {u.uid})" for u in users) + "; sessions run as 'work'",
                "# (or as the user that already has the session's uid)."]
    return "\n".join(out) + "\n"


def survey_text(survey: ImageSurvey, choices: Choices, stream: TextIO = sys.stdout) -> str:
    d = survey.distro
    lines = [f"{survey.image} ({survey.image_id[:19]}, {survey.architecture or 'arch unknown'})",
             f"  distro:      {d.os_release or 'unknown'} ({d.pretty_name or 'no os-release'}), {d.libc or 'libc unknown'}",
             f"  agent:       {d.agent_distro or 'cannot tell'} ({d.agent_probe or 'no probe'})"]  # fmt: skip
    for p in survey.pythons:
        mods = f" [{', '.join(p.modules)}]" if p.modules else ""
        lines.append(f"  python:      {_describe_python(p)}{mods}")
    for env in survey.conda:
        lines.append(f"  conda:       {env.executable}")
    if survey.cuda:
        lines.append(f"  cuda:        {survey.cuda.version or 'version unknown'} ({'; '.join(survey.cuda.evidence)})")
    lines.append(f"  entrypoint:  {json.dumps(survey.config.entrypoint)}  cmd: {json.dumps(survey.config.cmd)}")
    lines.append(f"  users:       {', '.join(f'{u.name}:{u.uid}' for u in survey.users if u.uid == 0 or u.uid >= 1000)}")
    for a in survey.apps:
        lines.append(f"  app:         {a.service} ({a.evidence})")
    for note in survey.notes:
        word = paint(note.severity, "yellow" if note.severity == "warning" else "cyan", stream)
        lines.append(f"  {word}: {note.topic}: {note.message}")
    lines.append(f"  choice:      runtime {choices.runtime_type} {choices.runtime_path or ''}".rstrip()
                 + f", base-distro {choices.base_distro or 'unset'}, services "
                 + (", ".join(a.service for a in choices.services) or "none"))  # fmt: skip
    return "\n".join(lines) + "\n"
