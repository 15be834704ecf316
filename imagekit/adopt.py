"""``init --from IMAGE``: survey an existing image (a vendor CUDA/NGC image, a vLLM image…) without starting it.

:func:`survey` reads the image's config (entrypoint, Cmd, env, user, labels) and its files through
:mod:`imagekit.imagefs` and returns an :class:`ImageSurvey`: the distro and C library and what the
agent concludes from them (:mod:`imagekit.image_facts`), Python interpreters and conda, CUDA, the
users, and the installed apps that the service-def library has a definition for. Every fact says
where it was found; :mod:`imagekit.adopt_files` turns the survey into ``kernel.toml`` + ``Dockerfile``.

Only cheap reads: single files and ``stat`` of known paths (a directory listing would stream its
whole subtree out of the image), so a multi-GB image is surveyed in seconds.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from krunner.contract import (
    BASE_DISTRO_LABEL,
    DISTRO_FAMILIES,
    IMAGEKIT_LABEL_PREFIX,
    LABEL_PREFIX,
)

from .image_facts import (  # noqa: I001
    GLIBC_LOADERS,
    MUSL_LOADERS,
    PATH_DIRS,
    distro_from_os_release,
    parse_os_release,
    present,
    probe_libc,
    recognised,
)
from .kernel_inputs import ImageFS

#: Python minor versions looked for when an interpreter's name carries no version (python3 -> python3.N)
PY_MINORS = range(14, 5, -1)
#: where conda/mamba installs usually live (besides $CONDA_DIR / $CONDA_PREFIX / $MAMBA_ROOT_PREFIX)
CONDA_PREFIXES = ("/opt/conda", "/opt/miniconda3", "/opt/miniforge3", "/opt/mambaforge", "/usr/local/conda",
                  "/root/miniconda3", "/root/anaconda3")  # fmt: skip
#: the uid the agent's entrypoint gives the session user on a typical single-user host
COMMON_SESSION_UID = 1000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Note(_Model):
    severity: Literal["info", "warning"]
    topic: str
    message: str


class DistroFacts(_Model):
    os_release: str | None = Field(None, description="ID+VERSION_ID from /etc/os-release, e.g. debian12")
    pretty_name: str | None = None
    libc: Literal["glibc", "musl"] | None = Field(None, description="from the dynamic loaders present")
    label: str | None = Field(None, description="the image's own ai.backend.base-distro label, if any")
    agent_distro: str | None = Field(None, description="what the agent concludes without a label")
    agent_probe: str = Field("", description="the probe that answers, and the line it reads")


class PythonFound(_Model):
    path: str = Field(description="as found (a PATH directory or a conda prefix)")
    real_path: str
    version: str | None = Field(None, description="major.minor from the file name, patch from conda-meta if known")
    source: Literal["path", "conda"]
    modules: list[str] = Field(default_factory=list, description="app modules found in its site-packages")


class CondaFound(_Model):
    prefix: str
    executable: str


class CudaFound(_Model):
    version: str | None
    evidence: list[str]


class UserEntry(_Model):
    name: str
    uid: int
    gid: int
    home: str
    shell: str


class ImageConfigFacts(_Model):
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str | None = None
    workdir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    entrypoint_chains: bool | None = Field(None, description="the entrypoint script ends in exec \"$@\" (None: not a script)")


class AppMatch(_Model):
    service: str = Field(description="the service-def library entry")
    evidence: str
    interpreter: str | None = Field(None, description="for {runtime_path} apps: the python that has the module")


class ImageSurvey(_Model):
    image: str
    image_id: str
    architecture: str | None = None
    distro: DistroFacts
    pythons: list[PythonFound]
    conda: list[CondaFound]
    cuda: CudaFound | None
    config: ImageConfigFacts
    users: list[UserEntry]
    apps: list[AppMatch]
    backend_labels: dict[str, str] = Field(description="ai.backend.* labels the image already has")
    notes: list[Note]


# ------------------------------------------------------------------------------ detection pieces


def _text(fs: ImageFS, path: str, limit: int = 1 << 20) -> str | None:
    data = fs.read_bytes(path, limit=limit)
    return None if data is None else data.decode("utf-8", "replace")


def _distro(fs: ImageFS, labels: dict[str, str]) -> DistroFacts:
    raw = _text(fs, "/etc/os-release") or _text(fs, "/usr/lib/os-release")
    fields = parse_os_release(raw) if raw else {}
    glibc, musl = present(fs, GLIBC_LOADERS), present(fs, MUSL_LOADERS)
    libc = "glibc" if glibc and not musl else "musl" if musl and not glibc else None
    agent, results = probe_libc(fs)
    probe = ""
    if agent is not None:
        answer = results[-1]
        line = (recognised(answer.output or "") or ("",))[0]
        probe = f"`{answer.command}` prints {line!r}"
    elif results:
        probe = "no probe answers: " + "; ".join(f"{r.command}: {r.note}" for r in results)
    return DistroFacts(os_release=distro_from_os_release(fields) if fields else None, pretty_name=fields.get("PRETTY_NAME"),
                       libc=libc, label=labels.get(BASE_DISTRO_LABEL) or None, agent_distro=agent, agent_probe=probe)  # fmt: skip


def _path_dirs(env: dict[str, str]) -> list[str]:
    dirs = [d for d in env.get("PATH", "").split(":") if d.startswith("/")]
    return list(dict.fromkeys(dirs + list(PATH_DIRS)))


def _executable(fs: ImageFS, path: str) -> bool:
    info = fs.stat(path)
    return info is not None and info.executable


_PY_NAME = re.compile(r"python(\d)\.(\d+)")


def _python_version(fs: ImageFS, path: str) -> tuple[str, str | None]:
    """(real path, major.minor) of a python executable: from its resolved name, else python3.N beside it."""
    real = getattr(fs, "realpath", lambda p: p)(path) or path
    if m := _PY_NAME.fullmatch(posixpath.basename(real)):
        return real, f"{m.group(1)}.{m.group(2)}"
    directory = posixpath.dirname(real)
    for minor in PY_MINORS:
        if _executable(fs, f"{directory}/python3.{minor}"):
            return real, f"3.{minor}"
    return real, None


def _site_dirs(prefix: str, version: str | None) -> list[str]:
    if version is None:
        return []
    out = [f"{prefix}/lib/python{version}/site-packages"]
    if prefix == "/usr":
        out += ["/usr/lib/python3/dist-packages", f"/usr/local/lib/python{version}/dist-packages"]
    return out


#: library service -> python module whose package marks it installed (run by {runtime_path} -m …)
PY_APPS = {"jupyterlab": "jupyterlab", "jupyter": "notebook", "tensorboard": "tensorboard"}


def _modules(fs: ImageFS, prefix: str, version: str | None) -> list[str]:
    found = []
    for module in PY_APPS.values():
        if any(fs.stat(f"{site}/{module}/__init__.py") is not None for site in _site_dirs(prefix, version)):
            found.append(module)
    return found


def _conda_prefixes(env: dict[str, str]) -> list[str]:
    named = [env[k] for k in ("CONDA_DIR", "CONDA_PREFIX", "MAMBA_ROOT_PREFIX") if env.get(k, "").startswith("/")]
    return list(dict.fromkeys(named + list(CONDA_PREFIXES)))


def _conda_python_patch(fs: ImageFS, prefix: str, version: str | None) -> str | None:
    """The full version conda recorded (conda-meta/history names every package it linked)."""
    history = _text(fs, f"{prefix}/conda-meta/history", limit=4 << 20) or ""
    versions = re.findall(r"^\+(?:\S*::)?python-(\d+\.\d+\.\d+)-", history, re.M)
    matching = [v for v in versions if version is None or v.startswith(version + ".")]
    return matching[-1] if matching else None


def _pythons(fs: ImageFS, env: dict[str, str]) -> tuple[list[PythonFound], list[CondaFound]]:
    pythons: list[PythonFound] = []
    seen: set[str] = set()
    conda: list[CondaFound] = []
    for prefix in _conda_prefixes(env):
        for name in ("conda", "mamba", "micromamba"):
            if _executable(fs, f"{prefix}/bin/{name}"):
                conda.append(CondaFound(prefix=prefix, executable=f"{prefix}/bin/{name}"))
                break
    conda_bins = {f"{c.prefix}/bin" for c in conda}
    candidates = [f"{d}/{n}" for d in _path_dirs(env) for n in ("python3", "python")]
    candidates += [f"{b}/python3" for b in sorted(conda_bins)]
    for path in candidates:
        if not _executable(fs, path):
            continue
        real, version = _python_version(fs, path)
        if real in seen:
            continue
        seen.add(real)
        directory = posixpath.dirname(path)
        prefix = posixpath.dirname(posixpath.dirname(real))
        source: Literal["path", "conda"] = "conda" if directory in conda_bins else "path"
        if source == "conda":
            version = _conda_python_patch(fs, posixpath.dirname(directory), version) or version
        short = ".".join((version or "").split(".")[:2]) or None
        pythons.append(PythonFound(path=path, real_path=real, version=version, source=source,
                                   modules=_modules(fs, prefix, short)))  # fmt: skip
    return pythons, conda


def _cuda(fs: ImageFS, env: dict[str, str]) -> CudaFound | None:
    evidence: list[str] = []
    version = None
    raw = _text(fs, "/usr/local/cuda/version.json")
    if raw:
        try:
            version = json.loads(raw).get("cuda", {}).get("version")
        except (ValueError, AttributeError):
            version = None
        evidence.append(f"/usr/local/cuda/version.json says {version or 'no version'}")
    raw = _text(fs, "/usr/local/cuda/version.txt")
    if raw and (m := re.search(r"CUDA Version (\d+(?:\.\d+)*)", raw)):
        version = version or m.group(1)
        evidence.append(f"/usr/local/cuda/version.txt says {m.group(1)}")
    if env.get("CUDA_VERSION"):
        version = version or env["CUDA_VERSION"]
        evidence.append(f"CUDA_VERSION={env['CUDA_VERSION']} in the image's environment")
    for lib in ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"):
        for major in range(13, 9, -1):
            if fs.stat(f"{lib}/libcudart.so.{major}") is not None:
                version = version or f"{major}"
                evidence.append(f"{lib}/libcudart.so.{major}")
                break
        else:
            continue
        break
    return CudaFound(version=version, evidence=evidence) if evidence else None


def _users(fs: ImageFS) -> list[UserEntry]:
    out = []
    for line in (_text(fs, "/etc/passwd") or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 7 and parts[2].isdigit() and parts[3].isdigit():
            out.append(UserEntry(name=parts[0], uid=int(parts[2]), gid=int(parts[3]), home=parts[5], shell=parts[6]))
    return out


def _chains(fs: ImageFS, entrypoint: list[str] | None) -> bool | None:
    """Whether the entrypoint is a shell script that hands over to its arguments (exec "$@")."""
    if not entrypoint:
        return None
    program = entrypoint[0]
    if program in ("/bin/sh", "/bin/bash", "sh", "bash") and len(entrypoint) > 2 and entrypoint[1] == "-c":
        return '"$@"' in entrypoint[2] or "$@" in entrypoint[2]
    if not program.startswith("/"):
        return None
    data = fs.read_bytes(program, limit=256 << 10)
    if not data or not data.startswith(b"#!"):
        return None
    return bool(re.search(rb'exec\s+(?:[^\n]*\s)?"?\$(?:@|\{@\})"?', data))


def _apps(fs: ImageFS, env: dict[str, str], pythons: list[PythonFound]) -> list[AppMatch]:
    apps: list[AppMatch] = []
    for service, module in PY_APPS.items():
        owner = next((p for p in pythons if module in p.modules), None)
        if owner is not None:
            apps.append(AppMatch(service=service, evidence=f"the {module} package in {owner.path}'s site-packages",
                                 interpreter=owner.path))  # fmt: skip
    fixed = {"code-server": "/usr/local/bin/code-server", "filebrowser": "/usr/local/bin/filebrowser",
             "vnc-web": "/opt/noVNC/utils/novnc_proxy"}  # fmt: skip
    for service, path in fixed.items():
        if _executable(fs, path):
            apps.append(AppMatch(service=service, evidence=f"{path} is an executable"))
    dirs = _path_dirs(env)
    mlflow = next((f"{d}/mlflow" for d in dirs if _executable(fs, f"{d}/mlflow")), None)
    if mlflow:
        apps.append(AppMatch(service="mlflow-ui", evidence=f"{mlflow} is on PATH"))
    busybox = next((f"{d}/busybox" for d in dirs if _executable(fs, f"{d}/busybox")), None)
    if busybox and b"httpd" in (fs.read_bytes(busybox, limit=8 << 20) or b""):
        apps.append(AppMatch(service="static-files", evidence=f"{busybox} has the httpd applet"))
    return apps


SHELLS = ("bash", "sh", "/bin/bash", "/bin/sh", "/usr/bin/bash")


def replaced_startup(config: ImageConfigFacts) -> bool:
    """The image starts something the agent's entrypoint will replace (not just a base image's default shell)."""
    return bool(config.entrypoint) or bool(config.cmd) and not (len(config.cmd) == 1 and config.cmd[0] in SHELLS)


def _notes(survey: dict) -> list[Note]:
    notes: list[Note] = []
    config: ImageConfigFacts = survey["config"]
    if replaced_startup(config):
        given = " ".join(shlex.quote(a) for a in (config.entrypoint or []) + (config.cmd or []))
        notes.append(Note(severity="info", topic="entrypoint",
                          message=f"the agent replaces ENTRYPOINT and CMD ({given}) with its own entrypoint.sh and "
                          "runner; nothing they do happens in a session"))  # fmt: skip
    if config.entrypoint and config.entrypoint_chains is False:
        notes.append(Note(severity="warning", topic="entrypoint",
                          message=f"the entrypoint {config.entrypoint[0]} does not exec \"$@\": whatever set-up it does "
                          "(environment, daemons) must move to ENV or /opt/container/bootstrap.sh"))  # fmt: skip
    if config.user and config.user.split(":")[0] not in ("", "0", "root"):
        notes.append(Note(severity="warning", topic="user",
                          message=f"the image runs as USER {config.user}; the agent's entrypoint must start as root "
                          "to create the session user, so the Dockerfile switches back to root"))  # fmt: skip
    for user in survey["users"]:
        if user.uid == COMMON_SESSION_UID:
            notes.append(Note(severity="info", topic="users",
                              message=f"user {user.name!r} has uid {COMMON_SESSION_UID}: a session whose user id is "
                              f"{COMMON_SESSION_UID} runs as {user.name!r} instead of 'work' (the agent's entrypoint "
                              "keeps an existing user of that uid)"))  # fmt: skip
    distro: DistroFacts = survey["distro"]
    if distro.agent_distro is None:
        notes.append(Note(severity="warning", topic="distro",
                          message=f"the agent cannot tell the C library ({distro.agent_probe}); base-distro must be set"))
    if distro.libc == "musl":
        notes.append(Note(severity="warning", topic="distro",
                          message="a musl image: current upstream agents have no krunner volume for it"))
    if survey["labels"]:
        notes.append(Note(severity="warning", topic="labels",
                          message=f"the image already has {', '.join(sorted(survey['labels']))}: the build sets the "
                          "labels kernel.toml names; any other of these is inherited as it is"))  # fmt: skip
    if not survey["pythons"]:
        notes.append(Note(severity="info", topic="python",
                          message="no Python interpreter found: the image becomes an 'app' kernel (services and the "
                          "terminal only)"))  # fmt: skip
    return notes


def survey_fs(fs: ImageFS, *, image: str, image_id: str, config: dict, architecture: str | None = None) -> ImageSurvey:
    """The survey of an image whose files *fs* reads and whose config (``Config`` of the image) is *config*."""
    env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
    labels = {k: v for k, v in (config.get("Labels") or {}).items()
              if k.startswith(LABEL_PREFIX) and not k.startswith(IMAGEKIT_LABEL_PREFIX)}
    entrypoint = config.get("Entrypoint") or None
    facts = ImageConfigFacts(entrypoint=entrypoint, cmd=config.get("Cmd") or None, user=config.get("User") or None,
                             workdir=config.get("WorkingDir") or None, env=env,
                             entrypoint_chains=_chains(fs, entrypoint))  # fmt: skip
    pythons, conda = _pythons(fs, env)
    parts = {
        "distro": _distro(fs, labels),
        "pythons": pythons,
        "conda": conda,
        "cuda": _cuda(fs, env),
        "config": facts,
        "users": _users(fs),
        "apps": _apps(fs, env, pythons),
    }
    return ImageSurvey(image=image, image_id=image_id, architecture=architecture, backend_labels=labels,
                       notes=_notes({**parts, "labels": labels}), **parts)  # fmt: skip


def survey(client, image: str) -> ImageSurvey:
    """Survey *image* on the engine of *client* without starting it (exit-2 error if it is not local)."""
    from docker.errors import ImageNotFound

    from .errors import EnvironmentProblem
    from .imagefs import open_image_fs

    try:
        obj = client.images.get(image)
    except ImageNotFound:
        raise EnvironmentProblem(f"image {image} is not on the local Docker engine; build or pull it first "
                                 "(init --from reads a local image)") from None  # fmt: skip
    with open_image_fs(client, obj.id) as fs:
        return survey_fs(fs, image=image, image_id=obj.id, config=obj.attrs.get("Config") or {},
                         architecture=obj.attrs.get("Architecture"))  # fmt: skip


def family_supported(distro: str | None) -> bool:
    return bool(distro) and any(distro.startswith(f) for f in DISTRO_FAMILIES)
