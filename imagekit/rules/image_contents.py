"""BAI3xx: what the image's filesystem must contain (spec §1.7, §5.7, §6.1); only for image targets.

The checks read ``inputs.image_fs`` (files, never a running container) and say
which path they looked at and what they found there.
"""

from __future__ import annotations

import re

from krunner.contract import (
    BASE_DISTRO_LABEL,
    BOOTSTRAP_PATH,
    DISTRO_FAMILIES,
    RUNTIME_PATH_LABEL,
    SERVICE_DEFS_DIR,
)

from ..findings import Finding, Location, Severity

# the facts live in image_facts (shared with `init --from`); re-exported here for the rule's tests and docs
from ..image_facts import (  # noqa: F401
    GLIBC_DISTROS,
    GLIBC_LOADERS,
    MUSL_DISTRO,
    MUSL_LOADERS,
    PATH_DIRS,
    PROBE_ARCHES,
    ProbeResult,
    describe,
    distro_from_os_release,
    distro_from_probe_output,
    find_tool,
    glibc_distro,
    parse_os_release,
    present,
    probe_commands,
    probe_libc,
    recognised,
)
from ..kernel_inputs import FileInfo, ImageFS, KernelInputs
from ..policy import POLICY_PATH
from .catalogue import rule

UPSTREAM_FAMILIES = DISTRO_FAMILIES  # the agent ships artifacts for these only (§1.7)

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
#: what the agent's base-distro detection is modelled on
MATCHES_DISTRO_PROBE = (
    "Backend.AI 26.x agents (every line of `ldd --version` parsed, upstream #13719; libc.so.6 and musl-loader "
    "fallbacks, upstream #14587). Older agents only run `ldd --version`."
)
NO_LDD = rule(
    "BAI306", "error", "no base-distro label and the agent cannot detect the C library",
    "Set ai.backend.base-distro (e.g. ubuntu22.04), or keep ldd (libc-bin / musl-utils) or an executable "
    "libc.so.6 / musl loader in the image.",
    description="Without the label (or with an empty one) the agent runs `ldd --version`, then "
    "`/lib/<arch>-linux-gnu/libc.so.6`, `/lib64/libc.so.6`, `/usr/lib64/libc.so.6`, `/usr/lib/libc.so.6`, "
    "`/lib/libc.so.6` and `/lib/ld-musl-<arch>.so.1` in throw-away containers and reads a glibc version or "
    "`musl libc` from their output. If none answers, every session of the image fails at creation with "
    "UnsupportedBaseDistroError. The validator runs the same probes on the image's files without starting it.",
    subject=_S, matches=MATCHES_DISTRO_PROBE,
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
DISTRO_DETECTED = rule(
    "BAI314", "info", "base-distro is detected by the agent",
    "Nothing to do; set ai.backend.base-distro only to pin a different artifact set.",
    description="Without the label the agent probes the image (see BAI306) and maps what it finds to one of its "
    "artifact distros: glibc 2.17 centos7.6, 2.27 ubuntu18.04, 2.28 centos8.0, 2.31 ubuntu20.04, 2.34 centos9.0, "
    "2.35 ubuntu22.04, 2.39 ubuntu24.04 (other versions: the nearest lower one, the lowest below 2.17), musl "
    "alpine3.8. The finding names the probe that answers and the distro the agent uses.",
    subject=_S, matches=MATCHES_DISTRO_PROBE,
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



def _where(inputs: KernelInputs, label: str) -> Location:
    return inputs.location_of(label) or Location(file=inputs.target)


def _runtime_path(inputs: KernelInputs, fs: ImageFS) -> list[Finding]:
    path = inputs.labels.get(RUNTIME_PATH_LABEL, "").strip()
    if not path.startswith("/"):
        return []  # absent (runner default, injected) or malformed (a label rule reports it)
    info = fs.stat(path)
    loc = _where(inputs, RUNTIME_PATH_LABEL)
    if info is None or info.kind == "symlink":
        return [RUNTIME_MISSING.finding(f"runtime-path {path} does not exist in the image (found {describe(info)})",
                                        location=loc, label=RUNTIME_PATH_LABEL)]  # fmt: skip
    if not info.executable:
        return [RUNTIME_NOT_EXEC.finding(f"runtime-path {path} is {describe(info)}, not an executable file",
                                         location=loc, label=RUNTIME_PATH_LABEL)]  # fmt: skip
    return []


def _libc(fs: ImageFS) -> tuple[list[Finding], str | None]:
    glibc, musl = present(fs, GLIBC_LOADERS), present(fs, MUSL_LOADERS)
    if glibc and not musl:
        return [], "glibc"
    if musl and not glibc:
        return [], "musl"
    if glibc and musl:
        return [], None  # e.g. gcompat on Alpine: cannot tell
    loaders = ", ".join(GLIBC_LOADERS + MUSL_LOADERS)
    return [NO_LIBC.finding(f"none of {loaders} exists in the image", location=Location(file="/lib"))], None


def _tried(results: list[ProbeResult]) -> str:
    """``cmd: note; cmd, cmd: note`` (commands with the same note grouped, in the agent's order)."""
    groups: dict[str, list[str]] = {}
    for r in results:
        groups.setdefault(r.note, []).append(r.command)
    return "; ".join(f"{', '.join(commands)}: {note}" for note, commands in groups.items())


def _detected(inputs: KernelInputs, fs: ImageFS, loc: Location, empty: bool) -> list[Finding]:
    distro, results = probe_libc(fs)
    unset = f"{BASE_DISTRO_LABEL} is empty (the agent treats it as unset)" if empty else f"{BASE_DISTRO_LABEL} is not set"
    if distro is None:
        tried = _tried(results)
        return [NO_LDD.finding(f"{unset} and no probe of the agent identifies the C library ({tried}); every "
                               "session would fail with UnsupportedBaseDistroError", location=loc,
                               label=BASE_DISTRO_LABEL)]  # fmt: skip
    answer = results[-1]
    line = (recognised(answer.output or "") or ("",))[0]
    before = f" (after {_tried(results[:-1])})" if len(results) > 1 else ""
    musl = "; musl: current upstream agents have no krunner volume for it (see BAI015)" if distro == MUSL_DISTRO else ""
    return [DISTRO_DETECTED.finding(
        f"{unset}; the agent will run `{answer.command}`{before}, read {line!r} and use "
        f"{distro!r}{musl}", location=loc, label=BASE_DISTRO_LABEL)]


def _base_distro(inputs: KernelInputs, fs: ImageFS, libc: str | None) -> list[Finding]:
    out: list[Finding] = []
    raw_label = inputs.labels.get(BASE_DISTRO_LABEL)
    label = (raw_label or "").strip()
    loc = _where(inputs, BASE_DISTRO_LABEL)
    if not raw_label:  # missing or "": the agent probes (a blank-only value is used as is; BAI014 reports it)
        return _detected(inputs, fs, loc, empty=raw_label == "")
    if not label:
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
            found = ", ".join(present(fs, GLIBC_LOADERS if libc == "glibc" else MUSL_LOADERS))
            out.append(LIBC_MISMATCH.finding(
                f"{BASE_DISTRO_LABEL} is {label} ({wants}) but the image has the {libc} loader {found}",
                location=loc, label=BASE_DISTRO_LABEL))  # fmt: skip
    return out


def _entrypoint(fs: ImageFS) -> list[Finding]:
    out: list[Finding] = []
    sh = fs.stat("/bin/sh")
    if sh is None or not sh.executable:
        out.append(NO_SH.finding(f"/bin/sh is {describe(sh)} in the image", location=Location(file="/bin/sh")))
    alpine = fs.stat("/bin/ash") is not None  # entrypoint.sh's own test
    for tool, (breaks, on_glibc, on_musl, essential) in _TOOLS.items():
        if not (on_musl if alpine else on_glibc) or find_tool(fs, tool):
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
            out.append(SERVICE_DEF_UNREADABLE.finding(f"{path} is {describe(info)}: the runner cannot read it",
                                                      location=Location(file=path)))  # fmt: skip
    return out


def _files(fs: ImageFS) -> list[Finding]:
    out: list[Finding] = []
    policy = fs.stat(POLICY_PATH)
    if policy is not None and not _readable(policy):
        out.append(POLICY_UNREADABLE.finding(f"{POLICY_PATH} is {describe(policy)}: the jail cannot read it",
                                             location=Location(file=POLICY_PATH)))  # fmt: skip
    boot = fs.stat(BOOTSTRAP_PATH)
    if boot is not None and not boot.executable:
        out.append(BOOTSTRAP_NOT_EXEC.finding(f"{BOOTSTRAP_PATH} is {describe(boot)}: entrypoint.sh skips it",
                                              location=Location(file=BOOTSTRAP_PATH)))  # fmt: skip
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
