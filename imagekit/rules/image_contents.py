"""BAI3xx: what the image's filesystem must contain (spec §1.7, §5.7, §6.1); only for image targets.

The checks read ``inputs.image_fs`` (files, never a running container) and say
which path they looked at and what they found there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..findings import Finding, Location, Severity
from ..kernel_inputs import FileInfo, ImageFS, KernelInputs
from ..policy import POLICY_PATH
from .catalogue import rule

RUNTIME_PATH_LABEL = "ai.backend.runtime-path"
BASE_DISTRO_LABEL = "ai.backend.base-distro"
SERVICE_DEFS_DIR = "/etc/backend.ai/service-defs"
BOOTSTRAP = "/opt/container/bootstrap.sh"
PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
GLIBC_LOADERS = ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1")
MUSL_LOADERS = ("/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-aarch64.so.1")
UPSTREAM_FAMILIES = ("ubuntu", "centos", "alpine")  # the agent ships artifacts for these only (§1.7)

_S = "image-contents"

RUNTIME_MISSING = rule(
    "BAI301", "error", "runtime-path does not exist in the image",
    "Point ai.backend.runtime-path at an interpreter that exists in the image, e.g. /usr/bin/python3.",
    description="The runner only warns at start; query mode and every {runtime_path} service then fail.",
    subject=_S,
)  # fmt: skip
RUNTIME_NOT_EXEC = rule(
    "BAI302", "error", "runtime-path is not an executable file",
    "Make the file executable (chmod 755) or point the label at the real executable.",
    subject=_S,
)  # fmt: skip
DISTRO_MISMATCH = rule(
    "BAI303", "error", "base-distro label disagrees with /etc/os-release",
    "Set ai.backend.base-distro to the image's distro and release (e.g. ubuntu22.04).",
    description="The agent picks libbaihook, the jail and the krunner volume by this label (§1.7); artifacts "
    "built for another release may not load.",
    subject=_S,
)  # fmt: skip
LIBC_MISMATCH = rule(
    "BAI304", "error", "base-distro label disagrees with the image's C library",
    "Use an alpine* label for musl images and ubuntu*/centos* for glibc images.",
    description="The label decides between the glibc and musl builds of everything the agent injects.",
    subject=_S,
)  # fmt: skip
NO_LIBC = rule(
    "BAI305", "error", "no dynamic loader (glibc or musl) found",
    "Build FROM a glibc (>= 2.17) or musl distribution image; the injected runner is dynamically linked.",
    subject=_S,
)  # fmt: skip
NO_LDD = rule(
    "BAI306", "error", "no base-distro label and no ldd",
    "Set ai.backend.base-distro, or install ldd (libc-bin / musl-utils); the agent runs `ldd --version` otherwise.",
    description="Without the label the agent probes the image with `ldd --version`; if that fails, every "
    "session fails at creation.",
    subject=_S,
)  # fmt: skip
NO_SH = rule(
    "BAI307", "error", "/bin/sh is missing",
    "Use a base image with a POSIX shell at /bin/sh; the injected entrypoint.sh runs under it.",
    subject=_S,
)  # fmt: skip
ENTRYPOINT_TOOL = rule(
    "BAI308", "error", "a tool the entrypoint needs is missing",
    "Install the package that provides it (coreutils, sed, passwd/shadow-utils, libc-bin; busybox on Alpine).",
    description="entrypoint.sh creates the 'work' user with these tools before starting the runner (§5.7).",
    subject=_S,
)  # fmt: skip
ENTRYPOINT_TOOL_OPTIONAL = rule(
    "BAI309", "warning", "a tool the entrypoint uses is missing",
    "Install the package that provides it (passwd, adduser; shadow on Alpine).",
    subject=_S,
)  # fmt: skip
NO_TERMINAL_SHELL = rule(
    "BAI310", "warning", "no shell for the web terminal",
    "Install bash (or zsh); ttyd looks for /bin/bash, /bin/zsh or /bin/ash.",
    subject=_S,
)  # fmt: skip
SERVICE_DEF_UNREADABLE = rule(
    "BAI311", "error", "service-def file is not readable by the session user",
    "chmod 644 the file (and 755 its directory); the runner reads it as the non-root user.",
    description="An unreadable service-def makes the runner exit at start, so every session fails (§3.1).",
    subject=_S,
)  # fmt: skip
POLICY_UNREADABLE = rule(
    "BAI312", "warning", "jail policy file is not readable",
    "chmod 644 the policy file.",
    subject=_S,
)  # fmt: skip
BOOTSTRAP_NOT_EXEC = rule(
    "BAI313", "warning", "bootstrap.sh is not executable",
    "chmod 755 /opt/container/bootstrap.sh; entrypoint.sh skips it otherwise.",
    subject=_S,
)  # fmt: skip

# tool -> (what breaks without it, needed on glibc, needed on musl, essential?)
_TOOLS: dict[str, tuple[str, bool, bool, bool]] = {
    "getent": ("the entrypoint cannot look up the session user and group", True, True, True),
    "cut": ("the entrypoint cannot parse /etc/passwd entries", True, True, True),
    "sed": ("the entrypoint cannot rename the user to 'work' in /etc/passwd", True, True, True),
    "tr": ("the entrypoint cannot build the generated password", True, True, True),
    "chown": ("the entrypoint cannot hand /home/work to the session user", True, True, True),
    "useradd": ("the entrypoint cannot create the 'work' user and exits 1", True, False, True),
    "groupadd": ("the entrypoint cannot create the session group and exits 1", True, False, True),
    "adduser": ("the entrypoint cannot create the 'work' user and exits 1", False, True, True),
    "addgroup": ("the entrypoint cannot create groups by gid", True, True, False),
    "chpasswd": ("the session password is not set, so password SSH/SFTP logins fail", True, True, False),
    "usermod": ("the session user does not join extra groups (ADDITIONAL_GIDS)", True, True, False),
}
_ALPINE_ESSENTIAL = {"addgroup"}  # busybox addgroup is how Alpine creates the group


def _family_version(distro: str) -> tuple[str, tuple[int, ...]] | None:
    m = re.fullmatch(r"([a-z-]+)(\d+(?:\.\d+)*)?", distro.strip())
    if not m:
        return None
    version = tuple(int(p) for p in m.group(2).split(".")) if m.group(2) else ()
    return m.group(1), version


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = value.strip().strip("\"'")
    return out


def distro_from_os_release(fields: dict[str, str]) -> str | None:
    """``ID`` + ``VERSION_ID`` as a base-distro value: debian12, ubuntu22.04, alpine3.19, centos7."""
    family = fields.get("ID", "").lower()
    version = fields.get("VERSION_ID", "")
    if not family:
        return None
    if family == "alpine":
        version = ".".join(version.split(".")[:2])
    return f"{family}{version}"


def _where(inputs: KernelInputs, label: str) -> Location:
    return inputs.location_of(label) or Location(file=inputs.target)


def _describe(info: FileInfo | None) -> str:
    if info is None:
        return "nothing"
    if info.kind == "symlink":
        return "a dangling symlink"
    return f"a {'directory' if info.kind == 'dir' else info.kind} with mode {info.mode:04o}"


def _find_tool(fs: ImageFS, name: str) -> bool:
    return any((info := fs.stat(f"{d}/{name}")) is not None and info.executable for d in PATH_DIRS)


def _present(fs: ImageFS, paths: Iterable[str]) -> list[str]:
    return [p for p in paths if (info := fs.stat(p)) is not None and info.kind == "file"]


def _runtime_path(inputs: KernelInputs, fs: ImageFS) -> list[Finding]:
    path = inputs.labels.get(RUNTIME_PATH_LABEL, "").strip()
    if not path.startswith("/"):
        return []  # absent (runner default, injected) or malformed (a label rule reports it)
    info = fs.stat(path)
    loc = _where(inputs, RUNTIME_PATH_LABEL)
    if info is None or info.kind == "symlink":
        return [RUNTIME_MISSING.finding(f"runtime-path {path} does not exist in the image (found {_describe(info)})",
                                        location=loc, label=RUNTIME_PATH_LABEL)]  # fmt: skip
    if not info.executable:
        return [RUNTIME_NOT_EXEC.finding(f"runtime-path {path} is {_describe(info)}, not an executable file",
                                         location=loc, label=RUNTIME_PATH_LABEL)]  # fmt: skip
    return []


def _libc(fs: ImageFS) -> tuple[list[Finding], str | None]:
    glibc, musl = _present(fs, GLIBC_LOADERS), _present(fs, MUSL_LOADERS)
    if glibc and not musl:
        return [], "glibc"
    if musl and not glibc:
        return [], "musl"
    if glibc and musl:
        return [], None  # e.g. gcompat on Alpine: cannot tell
    loaders = ", ".join(GLIBC_LOADERS + MUSL_LOADERS)
    return [NO_LIBC.finding(f"none of {loaders} exists in the image", location=Location(file="/lib"))], None


def _base_distro(inputs: KernelInputs, fs: ImageFS, libc: str | None) -> list[Finding]:
    out: list[Finding] = []
    label = inputs.labels.get(BASE_DISTRO_LABEL, "").strip()
    loc = _where(inputs, BASE_DISTRO_LABEL)
    if not label:
        if not _find_tool(fs, "ldd"):
            out.append(NO_LDD.finding(f"{BASE_DISTRO_LABEL} is not set and ldd is not in {', '.join(PATH_DIRS)}",
                                      location=loc, label=BASE_DISTRO_LABEL))  # fmt: skip
        return out
    parsed = _family_version(label)
    raw = fs.read_bytes("/etc/os-release") or fs.read_bytes("/usr/lib/os-release")
    actual = distro_from_os_release(parse_os_release(raw.decode("utf-8", "replace"))) if raw else None
    actual_parsed = _family_version(actual) if actual else None
    if parsed and actual_parsed:
        (fam, ver), (afam, aver) = parsed, actual_parsed
        common = min(len(ver), len(aver))
        if fam != afam and afam in UPSTREAM_FAMILIES:
            out.append(DISTRO_MISMATCH.finding(f"{BASE_DISTRO_LABEL} is {label} but /etc/os-release says {actual}",
                                               location=loc, label=BASE_DISTRO_LABEL))  # fmt: skip
        elif fam != afam:
            out.append(DISTRO_MISMATCH.finding(
                f"{BASE_DISTRO_LABEL} is {label} but /etc/os-release says {actual} (a stand-in: the agent has no "
                f"{afam} artifacts)", location=loc, label=BASE_DISTRO_LABEL, severity=Severity.INFO,
                hint=f"Keep the stand-in only if {label}'s glibc is not newer than the image's."))  # fmt: skip
        elif ver[:common] != aver[:common]:
            out.append(DISTRO_MISMATCH.finding(f"{BASE_DISTRO_LABEL} is {label} but /etc/os-release says {actual}",
                                               location=loc, label=BASE_DISTRO_LABEL))  # fmt: skip
    if parsed and libc is not None:
        wants = "musl" if parsed[0] == "alpine" else "glibc"
        if wants != libc:
            found = ", ".join(_present(fs, GLIBC_LOADERS if libc == "glibc" else MUSL_LOADERS))
            out.append(LIBC_MISMATCH.finding(
                f"{BASE_DISTRO_LABEL} is {label} ({wants}) but the image has the {libc} loader {found}",
                location=loc, label=BASE_DISTRO_LABEL))  # fmt: skip
    return out


def _entrypoint(fs: ImageFS) -> list[Finding]:
    out: list[Finding] = []
    sh = fs.stat("/bin/sh")
    if sh is None or not sh.executable:
        out.append(NO_SH.finding(f"/bin/sh is {_describe(sh)} in the image", location=Location(file="/bin/sh")))
    alpine = fs.stat("/bin/ash") is not None  # entrypoint.sh's own test
    for tool, (breaks, on_glibc, on_musl, essential) in _TOOLS.items():
        if not (on_musl if alpine else on_glibc) or _find_tool(fs, tool):
            continue
        essential = essential or (alpine and tool in _ALPINE_ESSENTIAL)
        r = ENTRYPOINT_TOOL if essential else ENTRYPOINT_TOOL_OPTIONAL
        out.append(r.finding(f"{tool} is not in {', '.join(PATH_DIRS)}: {breaks}"))
    if not any(fs.stat(p) is not None for p in ("/bin/bash", "/bin/zsh", "/bin/ash")):
        out.append(NO_TERMINAL_SHELL.finding("none of /bin/bash, /bin/zsh, /bin/ash exists: the web terminal cannot "
                                             "start a shell", location=Location(file="/bin/bash")))  # fmt: skip
    return out


def _readable(info: FileInfo) -> bool:
    return info.kind == "file" and bool(info.mode & 0o004)


def _service_defs(fs: ImageFS) -> list[Finding]:
    names = fs.listdir(SERVICE_DEFS_DIR)
    if names is None:
        return []
    out: list[Finding] = []
    directory = fs.stat(SERVICE_DEFS_DIR)
    if directory is not None and (directory.mode & 0o005) != 0o005:
        out.append(SERVICE_DEF_UNREADABLE.finding(
            f"{SERVICE_DEFS_DIR} has mode {directory.mode:04o}: other users cannot list or open it",
            location=Location(file=SERVICE_DEFS_DIR)))  # fmt: skip
    for name in sorted(n for n in names if n.endswith(".json")):
        path = f"{SERVICE_DEFS_DIR}/{name}"
        info = fs.stat(path)
        if info is None or not _readable(info):
            out.append(SERVICE_DEF_UNREADABLE.finding(f"{path} is {_describe(info)}: the runner cannot read it",
                                                      location=Location(file=path)))  # fmt: skip
    return out


def _files(fs: ImageFS) -> list[Finding]:
    out: list[Finding] = []
    policy = fs.stat(POLICY_PATH)
    if policy is not None and not _readable(policy):
        out.append(POLICY_UNREADABLE.finding(f"{POLICY_PATH} is {_describe(policy)}: the jail cannot read it",
                                             location=Location(file=POLICY_PATH)))  # fmt: skip
    boot = fs.stat(BOOTSTRAP)
    if boot is not None and not boot.executable:
        out.append(BOOTSTRAP_NOT_EXEC.finding(f"{BOOTSTRAP} is {_describe(boot)}: entrypoint.sh skips it",
                                              location=Location(file=BOOTSTRAP)))  # fmt: skip
    return out


def check(inputs: KernelInputs) -> list[Finding]:
    fs = inputs.image_fs
    if fs is None:
        return []
    libc_findings, libc = _libc(fs)
    return [
        *_runtime_path(inputs, fs),
        *libc_findings,
        *_base_distro(inputs, fs, libc),
        *_entrypoint(fs),
        *_service_defs(fs),
        *_files(fs),
    ]
