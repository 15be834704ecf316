"""Facts read from an image's filesystem without running it: distro, C library, tools on PATH, and
what a Backend.AI agent concludes about the C library (its ``ldd --version`` / libc / musl probes,
emulated on the image's files). Used by the image-contents rules and by ``init --from``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from .kernel_inputs import FileInfo, ImageFS

PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
GLIBC_LOADERS = ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1")
MUSL_LOADERS = ("/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-aarch64.so.1")


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


def describe(info: FileInfo | None) -> str:
    if info is None:
        return "nothing"
    if info.kind == "symlink":
        return "a dangling symlink"
    return f"a {'directory' if info.kind == 'dir' else info.kind} with mode {info.mode:04o}"


def find_tool(fs: ImageFS, name: str) -> bool:
    return any((info := fs.stat(f"{d}/{name}")) is not None and info.executable for d in PATH_DIRS)


def present(fs: ImageFS, paths: Iterable[str]) -> list[str]:
    return [p for p in paths if (info := fs.stat(p)) is not None and info.kind == "file"]



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


def recognised(text: str) -> tuple[str, str, str | None] | None:
    """(line, distro, glibc version as written) of the first line of *text* the agent recognises."""
    for raw in text.splitlines():
        if (read := _read_line(raw.strip())) is not None:
            return raw.strip(), *read
    return None


def distro_from_probe_output(text: str) -> str | None:
    """What the agent concludes from one probe's output (stdout and stderr together): from the first line,
    stripped, that is an ``ldd --version`` glibc banner, a libc.so.6 banner or a musl banner; None if none is."""
    found = recognised(text)
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
        return ProbeResult(path, None, f"is {describe(info)}, not executable")
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
