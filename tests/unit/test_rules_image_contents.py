"""BAI3xx rules over an in-memory ImageFS (the rules only read through the ImageFS protocol)."""

from __future__ import annotations

import posixpath

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


TOOLS = ("getent", "cut", "sed", "tr", "chown", "ldd")
SBIN_TOOLS = ("useradd", "groupadd", "usermod", "addgroup", "chpasswd")


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
    fs.file("/etc/backend.ai/service-defs/jupyter.json", b"{}")
    return fs


def alpine_fs() -> FakeImageFS:
    fs = FakeImageFS()
    fs.exe("/bin/busybox").exe("/lib/ld-musl-x86_64.so.1")
    for applet in ("sh", "ash", "getent", "cut", "sed", "tr", "chown", "adduser", "addgroup", "chpasswd"):
        fs.link(f"/bin/{applet}", "/bin/busybox")
    fs.exe("/usr/bin/ldd")
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


def test_bai306_no_label_and_no_ldd():
    assert run(debian_fs()) == []
    f = run(debian_fs().remove("/usr/bin/ldd"))
    assert ids(f) == ["BAI306"] and "ldd" in f[0].message


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
