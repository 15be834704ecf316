"""BAI3xx: what the image's filesystem must contain (spec §1.7, §5.7, §6.1); only for image targets.

The checks read ``inputs.image_fs`` (files, never a running container) and say
which path they looked at and what they found there.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from krunner.contract import BASE_DISTRO_LABEL, DISTRO_FAMILIES, RUNTIME_PATH_LABEL, SERVICE_DEFS_DIR

from ..findings import Finding, Location, Severity
from ..kernel_inputs import FileInfo, ImageFS, KernelInputs
from ..policy import POLICY_PATH
from .catalogue import rule

BOOTSTRAP = "/opt/container/bootstrap.sh"
PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
GLIBC_LOADERS = ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1")
MUSL_LOADERS = ("/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-aarch64.so.1")
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


# ------------------------------------------------------------------------------ the agent's libc probe

#: glibc version -> the distro whose agent artifacts the agent picks (Backend.AI 26.x)
GLIBC_DISTROS: dict[float, str] = {
    2.17: "centos7.6", 2.27: "ubuntu18.04", 2.28: "centos8.0", 2.31: "ubuntu20.04", 2.34: "centos9.0",
    2.35: "ubuntu22.04", 2.39: "ubuntu24.04",
}  # fmt: skip
MUSL_DISTRO = "alpine3.8"
#: the Linux spelling of the image architectures the probe paths use (the image's arch is read from its files)
PROBE_ARCHES = ("x86_64", "aarch64", "ppc64le", "s390x", "riscv64")
_LDD_GLIBC_LINE = re.compile(r"ldd \([^)]+\) (\d+(?:\.\d+)?)[\d.]*")
_LIBC_BANNER_LINE = re.compile(r"GNU C Library .*release version (\d+\.\d+)")
_MUSL_LINE = re.compile(r"musl libc .+")
_PROBE_READ_LIMIT = 64 << 20


def glibc_distro(version: float) -> str:
    """The agent's distro for a glibc version: exact, else the nearest lower known one (the lowest if older)."""
    if version in GLIBC_DISTROS:
        return GLIBC_DISTROS[version]
    lower = [v for v in GLIBC_DISTROS if v < version]
    return GLIBC_DISTROS[max(lower)] if lower else GLIBC_DISTROS[min(GLIBC_DISTROS)]


def _read_line(line: str) -> tuple[str, str | None] | None:
    """(distro, glibc version as written) for one stripped output line the agent recognises, else None."""
    if m := _LDD_GLIBC_LINE.fullmatch(line) or _LIBC_BANNER_LINE.match(line):
        return glibc_distro(float(m.group(1))), m.group(1)
    if _MUSL_LINE.fullmatch(line):
        return MUSL_DISTRO, None
    return None


def _recognised(text: str) -> tuple[str, str, str | None] | None:
    """(line, distro, glibc version as written) of the first line of *text* the agent recognises."""
    for raw in text.splitlines():
        if (read := _read_line(raw.strip())) is not None:
            return raw.strip(), *read
    return None


def distro_from_probe_output(text: str) -> str | None:
    """What the agent concludes from one probe's output (stdout and stderr together): from the first line,
    stripped, that is an ``ldd --version`` glibc banner, a libc.so.6 banner or a musl banner; None if none is."""
    found = _recognised(text)
    return found[1] if found else None


def probe_commands(arch: str) -> list[str]:
    """The agent's probe commands, in its order."""
    return [
        "ldd --version",
        f"/lib/{arch}-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/usr/lib/libc.so.6",
        "/lib/libc.so.6", f"/lib/ld-musl-{arch}.so.1",
    ]  # fmt: skip


@dataclass(frozen=True)
class ProbeResult:
    """One emulated probe: what running *command* in the image would print (None: it cannot run at all)."""

    command: str
    output: str | None
    note: str  # what the validator found, for messages

    @property
    def distro(self) -> str | None:
        return distro_from_probe_output(self.output) if self.output is not None else None


def _image_arch(fs: ImageFS) -> str:
    for arch in PROBE_ARCHES:
        if fs.stat(f"/lib/{arch}-linux-gnu") is not None or fs.stat(f"/lib/ld-musl-{arch}.so.1") is not None:
            return arch
    return PROBE_ARCHES[0]


def _printed_banner(data: bytes) -> str:
    """The banner an executable libc prints when run directly, as far as its bytes show it."""
    m = re.search(rb"GNU C Library [^\n\x00]*release version \d+\.\d+[^\n\x00]*", data)
    if m:
        return m.group(0).decode("latin-1")
    m = re.search(rb"musl libc \(([^)\x00\n]*)\)", data)
    if m:
        return m.group(0).decode("latin-1")
    return ""


def _run_binary(fs: ImageFS, path: str) -> ProbeResult:
    """Emulate executing *path* (a libc or the musl loader) with no arguments."""
    info = fs.stat(path)
    if info is None or info.kind == "symlink":
        return ProbeResult(path, None, "does not exist")
    if not info.executable:
        return ProbeResult(path, None, f"is {_describe(info)}, not executable")
    data = fs.read_bytes(path, limit=_PROBE_READ_LIMIT) or b""
    if not data.startswith(b"\x7fELF"):
        return ProbeResult(path, None, "is not an ELF executable")
    banner = _printed_banner(data)
    return ProbeResult(path, banner, f"prints {banner!r}" if banner else "prints no libc banner")


def _run_ldd(fs: ImageFS, arch: str) -> ProbeResult:
    """Emulate ``ldd --version`` (ldd looked up in the default PATH)."""
    command = "ldd --version"
    path = next((f"{d}/ldd" for d in PATH_DIRS if (i := fs.stat(f"{d}/ldd")) is not None and i.executable), None)
    if path is None:
        return ProbeResult(command, None, f"no ldd in {':'.join(PATH_DIRS)}")
    data = fs.read_bytes(path, limit=_PROBE_READ_LIMIT) or b""
    if data.startswith(b"\x7fELF"):
        banner = _printed_banner(data)
        m = re.search(rb"ldd \([^)\x00\n]+\) \d+\.\d+", data)
        out = m.group(0).decode("latin-1") if m else banner
        return ProbeResult(command, out, f"{path} prints {out!r}" if out else f"{path} prints no version banner")
    if not data.startswith(b"#!"):
        return ProbeResult(command, None, f"{path} is neither a script nor an ELF executable")
    text = data.decode("utf-8", "replace")
    shebang = shlex.split(text[2:].splitlines()[0] or " ") or [""]
    interpreter = fs.stat(shebang[0]) if shebang[0].startswith("/") else None
    if interpreter is None or not interpreter.executable:
        return ProbeResult(command, None, f"{path} needs {shebang[0] or 'an interpreter'}, which the image lacks")
    # glibc's ldd script: echo 'ldd (Ubuntu GLIBC 2.35-0ubuntu3.8) 2.35' (older ones: printf "ldd %s%s\n" ...)
    if m := re.search(r"""echo\s+['"](ldd \([^)'"]+\) [\d.]+)['"]""", text):
        return ProbeResult(command, m.group(1), f"{path} prints {m.group(1)!r}")
    if m := re.search(r"""['"]ldd %s%s\\n['"]\s+['"]([^'"]*)['"]\s+['"]([\d.]+)['"]""", text):
        out = f"ldd {m.group(1)}{m.group(2)}"
        return ProbeResult(command, out, f"{path} prints {out!r}")
    # musl's ldd script: exec /lib/ld-musl-<arch>.so.1 --list "$@" (the loader prints its banner on --version)
    if m := re.search(r"exec\s+(/\S*ld-musl-[^\s\"']+)", text):
        loader = _run_binary(fs, m.group(1))
        out = loader.output if loader.output is not None else f"{path}: {m.group(1)}: not found"
        return ProbeResult(command, out, f"{path} runs {m.group(1)}, which {loader.note}")
    return ProbeResult(command, "", f"{path} is a script without a recognisable version banner")


def probe_libc(fs: ImageFS) -> tuple[str | None, list[ProbeResult]]:
    """Run the agent's probes on the image's files, in its order, until one is recognised:
    (the distro the agent concludes or None, the probes run)."""
    arch = _image_arch(fs)
    results: list[ProbeResult] = []
    for command in probe_commands(arch):
        result = _run_ldd(fs, arch) if command == "ldd --version" else _run_binary(fs, command)
        results.append(result)
        if result.distro is not None:
            return result.distro, results
    return None, results


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
    line = (_recognised(answer.output or "") or ("",))[0]
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
