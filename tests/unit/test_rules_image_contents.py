"""BAI3xx rules over an in-memory ImageFS (the rules only read through the ImageFS protocol)."""

from __future__ import annotations

import posixpath
import re

import pytest

from imagekit.findings import Severity
from imagekit.kernel_inputs import FileInfo, KernelInputs
from imagekit.rules import image_contents
from imagekit.rules.image_contents import distro_from_os_release, parse_os_release


class FakeImageFS:
    """Paths -> bytes (files), "dir", or ("link", target); modes per path (default 0o755 / 0o644)."""

    def __init__(self) -> None:
        self.nodes: dict[str, object] = {"/": "dir"}
        self.modes: dict[str, int] = {}

    def file(self, path: str, data: bytes = b"", mode: int = 0o644) -> "FakeImageFS":
        self._parents(path)
        self.nodes[path], self.modes[path] = data, mode
        return self

    def exe(self, path: str) -> "FakeImageFS":
        return self.file(path, b"\x7fELF", 0o755)

    def dir(self, path: str, mode: int = 0o755) -> "FakeImageFS":
        self._parents(path)
        self.nodes[path], self.modes[path] = "dir", mode
        return self

    def link(self, path: str, target: str) -> "FakeImageFS":
        self._parents(path)
        self.nodes[path] = ("link", target)
        return self

    def remove(self, path: str) -> "FakeImageFS":
        self.nodes.pop(path, None)
        return self

    def _parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent not in self.nodes:
            self.nodes[parent] = "dir"
            parent = posixpath.dirname(parent)

    def _resolve(self, path: str, hops: list[int] | None = None) -> tuple[str, bool]:
        """(real path, exists); a dangling or looping link gives (link path, False) if the link exists."""
        hops = hops if hops is not None else [0]
        real = "/"
        for name in [p for p in path.split("/") if p]:
            candidate = posixpath.join(real, name)
            node = self.nodes.get(candidate)
            while isinstance(node, tuple):
                hops[0] += 1
                if hops[0] > 40:
                    return candidate, False
                base = "/" if node[1].startswith("/") else real
                target, ok = self._resolve(posixpath.normpath(posixpath.join(base, node[1])), hops)
                if not ok:
                    return candidate, False
                candidate, node = target, self.nodes.get(target)
            if node is None:
                return candidate, False
            real = candidate
        return real, True

    def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes | None:
        real, ok = self._resolve(path)
        node = self.nodes.get(real) if ok else None
        return node[:limit] if isinstance(node, bytes) else None

    def stat(self, path: str) -> FileInfo | None:
        real, ok = self._resolve(path)
        if not ok:
            return FileInfo(kind="symlink", mode=0o777) if isinstance(self.nodes.get(real), tuple) else None
        kind = "dir" if self.nodes[real] == "dir" else "file"
        return FileInfo(kind=kind, mode=self.modes.get(real, 0o755 if kind == "dir" else 0o644))

    def listdir(self, path: str) -> list[str] | None:
        real, ok = self._resolve(path)
        if not ok or self.nodes.get(real) != "dir":
            return None
        prefix = real.rstrip("/") + "/"
        return sorted({p[len(prefix):].split("/")[0] for p in self.nodes if p.startswith(prefix) and p != real})


TOOLS = ("getent", "cut", "sed", "tr", "chown")
SBIN_TOOLS = ("useradd", "groupadd", "usermod", "addgroup", "chpasswd")


GLIBC_LDD = b"""#! /bin/bash
# This file is part of the GNU C Library.
case $1 in
  --vers | --versi | --versio | --version)
    echo 'ldd (Debian GLIBC 2.36-9+deb12u4) 2.36'
    exit 0
    ;;
esac
"""
MUSL_LDD = b"#!/bin/sh\nexec /lib/ld-musl-x86_64.so.1 --list \"$@\"\n"


def glibc_so(version: str, pkg: str = "Debian GLIBC") -> bytes:
    """An executable libc.so.6 as far as the probe reads it: ELF magic and the banner it prints."""
    return (b"\x7fELF\x02\x01\x01" + b"\x00" * 64 + f"GNU C Library ({pkg} {version}-1) stable release version "
            f"{version}.\nCopyright (C) 2024 Free Software Foundation, Inc.\n".encode() + b"\x00" * 16)


MUSL_LOADER = b"\x7fELF\x02\x01\x01" + b"\x00" * 64 + b"musl libc (x86_64)\nVersion %s\nDynamic Program Loader\n\x00"


def debian_fs() -> FakeImageFS:
    """A healthy Debian 12 image (merged /usr, dash as /bin/sh)."""
    fs = FakeImageFS()
    fs.link("/bin", "usr/bin").link("/lib64", "usr/lib64")
    fs.exe("/usr/bin/dash").link("/usr/bin/sh", "dash").exe("/usr/bin/bash")
    fs.exe("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    fs.link("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    fs.link("/lib", "usr/lib")
    fs.file("/etc/os-release", b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    fs.exe("/usr/bin/python3.11").link("/usr/bin/python3", "python3.11")
    for tool in TOOLS:
        fs.exe(f"/usr/bin/{tool}")
    for tool in SBIN_TOOLS:
        fs.exe(f"/usr/sbin/{tool}")
    fs.file("/usr/bin/ldd", GLIBC_LDD, 0o755)
    fs.file("/usr/lib/x86_64-linux-gnu/libc.so.6", glibc_so("2.36"), 0o755)
    fs.file("/etc/backend.ai/service-defs/jupyter.json", b"{}")
    return fs


def alpine_fs() -> FakeImageFS:
    fs = FakeImageFS()
    fs.exe("/bin/busybox").file("/lib/ld-musl-x86_64.so.1", MUSL_LOADER, 0o755)
    for applet in ("sh", "ash", "getent", "cut", "sed", "tr", "chown", "adduser", "addgroup", "chpasswd"):
        fs.link(f"/bin/{applet}", "/bin/busybox")
    fs.file("/usr/bin/ldd", MUSL_LDD, 0o755)
    fs.file("/etc/os-release", b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n')
    fs.exe("/usr/sbin/usermod")
    return fs


def run(fs, **labels: str) -> list:
    inputs = KernelInputs(target="img:latest", labels={f"ai.backend.{k.replace('_', '-')}": v for k, v in labels.items()},
                          image_fs=fs)  # fmt: skip
    return image_contents.check(inputs)


def ids(findings) -> list[str]:
    return sorted(f.rule for f in findings)


def test_healthy_images_have_no_findings():
    stand_in = run(debian_fs(), runtime_path="/usr/bin/python3", base_distro="ubuntu22.04")
    assert [(f.rule, f.severity) for f in stand_in] == [("BAI303", Severity.INFO)]
    assert run(debian_fs(), runtime_path="/usr/bin/python3", base_distro="debian12") == []
    assert run(alpine_fs(), base_distro="alpine3.19") == []


def test_no_image_fs_no_findings():
    assert image_contents.check(KernelInputs(target="x", labels={"ai.backend.runtime-path": "/nope"})) == []


def test_bai301_runtime_path_missing_or_dangling():
    f = run(debian_fs(), runtime_path="/usr/local/bin/python3", base_distro="debian12")
    assert ids(f) == ["BAI301"] and "/usr/local/bin/python3" in f[0].message and "nothing" in f[0].message
    assert f[0].label == "ai.backend.runtime-path"
    fs = debian_fs().link("/usr/bin/py", "/opt/gone/python")
    f = run(fs, runtime_path="/usr/bin/py", base_distro="debian12")
    assert ids(f) == ["BAI301"] and "dangling symlink" in f[0].message


def test_bai302_runtime_path_not_executable():
    fs = debian_fs().file("/usr/bin/python3.11", b"", mode=0o644)
    f = run(fs, runtime_path="/usr/bin/python3", base_distro="debian12")
    assert ids(f) == ["BAI302"] and "0644" in f[0].message
    f = run(debian_fs(), runtime_path="/usr/bin", base_distro="debian12")
    assert ids(f) == ["BAI302"] and "directory" in f[0].message


@pytest.mark.parametrize("label", ["debian11", "ubuntu22.04"])
def test_bai303_distro_mismatch(label):
    fs = debian_fs().file("/etc/os-release", b'ID=ubuntu\nVERSION_ID="20.04"\n')
    f = run(fs, base_distro=label)
    assert ids(f) == ["BAI303"] and f[0].severity is Severity.ERROR and "ubuntu20.04" in f[0].message


def test_os_release_parsing():
    assert distro_from_os_release(parse_os_release('ID=alpine\nVERSION_ID=3.19.1\n')) == "alpine3.19"
    assert distro_from_os_release(parse_os_release('ID="ubuntu"\nVERSION_ID="22.04"\n')) == "ubuntu22.04"
    assert distro_from_os_release(parse_os_release("ID=centos\nVERSION_ID=\"7\"\n")) == "centos7"
    # a label with a finer version than os-release agrees on the shared part
    fs = debian_fs().file("/etc/os-release", b'ID=centos\nVERSION_ID="7"\n')
    assert run(fs, base_distro="centos7.6") == []


def test_bai304_libc_mismatch():
    f = run(debian_fs(), base_distro="alpine3.8")
    assert "BAI304" in ids(f)
    msg = next(x for x in f if x.rule == "BAI304").message
    assert "glibc" in msg and "/lib64/ld-linux-x86-64.so.2" in msg
    f = run(alpine_fs().file("/etc/os-release", b"ID=ubuntu\nVERSION_ID=22.04\n"), base_distro="ubuntu22.04")
    assert ids(f) == ["BAI304"]


def test_bai305_no_loader():
    fs = debian_fs().remove("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    f = run(fs, base_distro="debian12")
    assert ids(f) == ["BAI305"] and "ld-musl" in f[0].message


def test_bai306_no_label_and_nothing_the_agent_can_run():
    fs = debian_fs().remove("/usr/bin/ldd").remove("/usr/lib/x86_64-linux-gnu/libc.so.6")
    f = run(fs)
    assert ids(f) == ["BAI306"] and f[0].severity is Severity.ERROR and f[0].label == "ai.backend.base-distro"
    # every probe of the agent is named, in its order
    msg = f[0].message
    order = ["ldd --version", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6",
             "/usr/lib/libc.so.6", "/lib/libc.so.6", "/lib/ld-musl-x86_64.so.1"]
    at = [re.search(r"(?<![\w/])" + re.escape(c), msg).start() for c in order]
    assert at == sorted(at)
    assert "UnsupportedBaseDistroError" in msg


def distro_findings(fs, **labels: str) -> list:
    return [f for f in run(fs, **labels) if f.rule in ("BAI306", "BAI314")]


def detected(fs, **labels: str):
    f = distro_findings(fs, **labels)
    assert ids(f) == ["BAI314"] and f[0].severity is Severity.INFO and f[0].label == "ai.backend.base-distro", f
    return f[0].message


def test_bai314_ldd_is_the_first_probe():
    msg = detected(debian_fs())
    assert "`ldd --version`" in msg and "'ldd (Debian GLIBC 2.36-9+deb12u4) 2.36'" in msg and "'ubuntu22.04'" in msg
    assert "after" not in msg


def test_bai314_an_empty_label_is_unset():
    assert "is empty" in detected(debian_fs(), base_distro="")


def test_bai314_without_ldd_the_agent_runs_libc():
    msg = detected(debian_fs().remove("/usr/bin/ldd"))
    assert "`/lib/x86_64-linux-gnu/libc.so.6`" in msg and "no ldd in" in msg
    assert "stable release version 2.36" in msg and "'ubuntu22.04'" in msg


def test_bai314_ldd_without_its_interpreter_is_skipped():
    msg = detected(debian_fs().remove("/usr/bin/bash"))
    assert "needs /bin/bash" in msg and "libc.so.6" in msg


def test_bai314_distroless_libc_only():
    fs = FakeImageFS().file("/lib/x86_64-linux-gnu/libc.so.6", glibc_so("2.36"), 0o755)
    fs.exe("/lib64/ld-linux-x86-64.so.2")
    assert "`/lib/x86_64-linux-gnu/libc.so.6`" in detected(fs)


def test_bai314_a_libc_that_is_not_executable_is_skipped():
    fs = debian_fs().remove("/usr/bin/ldd").file("/usr/lib/x86_64-linux-gnu/libc.so.6", glibc_so("2.36"), 0o644)
    f = run(fs)
    assert ids(f) == ["BAI306"] and "not executable" in f[0].message


@pytest.mark.parametrize("layout", ["/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/usr/lib/libc.so.6", "/lib/libc.so.6"])
def test_bai314_every_libc_path_the_agent_tries(layout):
    fs = FakeImageFS().exe("/lib64/ld-linux-x86-64.so.2").file(layout, glibc_so("2.17", "GNU libc"), 0o755)
    assert f"`{layout}`" in detected(fs) and "'centos7.6'" in detected(fs)


def test_bai314_musl_by_ldd_and_by_the_loader():
    msg = detected(alpine_fs())
    assert "`ldd --version`" in msg and "'musl libc (x86_64)'" in msg and "'alpine3.8'" in msg and "BAI015" in msg
    msg = detected(alpine_fs().remove("/usr/bin/ldd"))
    assert "`/lib/ld-musl-x86_64.so.1`" in msg and "'alpine3.8'" in msg


def test_bai314_aarch64_paths():
    fs = FakeImageFS().exe("/lib/ld-linux-aarch64.so.1")
    fs.file("/lib/aarch64-linux-gnu/libc.so.6", glibc_so("2.39", "Ubuntu GLIBC"), 0o755)
    assert "`/lib/aarch64-linux-gnu/libc.so.6`" in detected(fs) and "'ubuntu24.04'" in detected(fs)


def test_a_set_label_is_not_probed():
    fs = debian_fs().remove("/usr/bin/ldd").remove("/usr/lib/x86_64-linux-gnu/libc.so.6")
    assert distro_findings(fs, base_distro="ubuntu22.04") == []


@pytest.mark.parametrize(
    "version, distro",
    [("2.12", "centos7.6"), ("2.17", "centos7.6"), ("2.27", "ubuntu18.04"), ("2.28", "centos8.0"), ("2.30", "centos8.0"),
     ("2.31", "ubuntu20.04"), ("2.34", "centos9.0"), ("2.35", "ubuntu22.04"), ("2.36", "ubuntu22.04"),
     ("2.39", "ubuntu24.04"), ("2.40", "ubuntu24.04"), ("2.41", "ubuntu24.04")],
)
def test_glibc_version_to_distro(version, distro):
    assert image_contents.distro_from_probe_output(f"ldd (GNU libc) {version}\n") == distro
    assert image_contents.distro_from_probe_output(f"GNU C Library (GNU libc) stable release version {version}.") == distro


def test_probe_output_parsing_reads_every_line():
    parse = image_contents.distro_from_probe_output
    assert parse("ldd: warning: something\r\n  ldd (Ubuntu GLIBC 2.35-0ubuntu3.8) 2.35\r\nCopyright") == "ubuntu22.04"
    assert parse("musl libc (aarch64)\nVersion 1.2.5\nDynamic Program Loader\n") == "alpine3.8"
    assert parse("ldd (GNU libc) 2.17.90") == "centos7.6"  # trailing version digits are ignored
    assert parse("ldd 2.35") is None and parse("") is None and parse("musl libc") is None


def test_bai307_no_bin_sh():
    f = run(debian_fs().remove("/usr/bin/sh"), base_distro="debian12")
    assert ids(f) == ["BAI307"] and "/bin/sh is nothing" in f[0].message


def test_bai308_and_bai309_entrypoint_tools():
    fs = debian_fs().remove("/usr/sbin/useradd").remove("/usr/bin/sed").remove("/usr/sbin/chpasswd")
    f = run(fs, base_distro="debian12")
    assert ids(f) == ["BAI308", "BAI308", "BAI309"]
    text = " ".join(x.message for x in f)
    assert "useradd is not in" in text and "exits 1" in text and "chpasswd" in text and "password" in text
    # on Alpine useradd is not needed, busybox adduser/addgroup are
    f = run(alpine_fs().remove("/bin/addgroup"), base_distro="alpine3.19")
    assert ids(f) == ["BAI308"] and "addgroup" in f[0].message


def test_bai310_no_terminal_shell():
    f = run(debian_fs().remove("/usr/bin/bash"), base_distro="debian12")
    assert ids(f) == ["BAI310"]


def test_bai311_service_defs_unreadable():
    fs = debian_fs().file("/etc/backend.ai/service-defs/secret.json", b"{}", mode=0o600)
    fs.file("/etc/backend.ai/service-defs/notes.txt", b"", mode=0o600)  # not a *.json: ignored
    f = run(fs, base_distro="debian12")
    assert ids(f) == ["BAI311"] and "/etc/backend.ai/service-defs/secret.json" in f[0].message and "0600" in f[0].message
    fs = debian_fs().dir("/etc/backend.ai/service-defs", mode=0o700)
    f = run(fs, base_distro="debian12")
    assert ids(f) == ["BAI311"] and "0700" in f[0].message


def test_bai312_policy_unreadable():
    fs = debian_fs().file("/etc/backend.ai/jail/policy.yml", b"", mode=0o600)
    f = run(fs, base_distro="debian12")
    assert ids(f) == ["BAI312"] and f[0].location.file == "/etc/backend.ai/jail/policy.yml"
    assert run(debian_fs().file("/etc/backend.ai/jail/policy.yml", b""), base_distro="debian12") == []


def test_bai313_bootstrap_not_executable():
    f = run(debian_fs().file("/opt/container/bootstrap.sh", b"#!/bin/sh\n", mode=0o644), base_distro="debian12")
    assert ids(f) == ["BAI313"]
