"""LayersFS: real layer archives (gzip and plain tar) stacked like an overlay, OCI whiteouts applied."""

from __future__ import annotations

import gzip
import io
import tarfile

from imagekit.registry.layers_fs import LayersFS


def _layer(path, members, compress=True):
    """Write a layer: members are (name, kind, mode, data-or-linkname)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, mode, payload in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    data = buf.getvalue()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_stacking_whiteouts_symlinks_and_hardlinks(tmp_path):
    big = bytes(range(256)) * 8192  # 2 MiB, so reads seek inside a gzip stream
    base = _layer(tmp_path / "l1", [
        ("etc/", "dir", 0o755, None),
        ("etc/os-release", "file", 0o644, b"ID=debian\n"),
        ("etc/gone", "file", 0o644, b"x"),
        ("opt/kernel/", "dir", 0o755, None),
        ("opt/kernel/a.json", "file", 0o644, b"{}"),
        ("opt/kernel/b.json", "file", 0o600, b"{}"),
        ("usr/lib/libc.so.6", "file", 0o755, big),
        ("lib", "sym", 0o777, "usr/lib"),
        ("bin/loop", "sym", 0o777, "/bin/loop"),
    ])
    top = _layer(tmp_path / "l2", [
        ("./etc/.wh.gone", "file", 0o644, b""),
        ("opt/kernel/.wh..wh..opq", "file", 0o644, b""),
        ("opt/kernel/c.json", "file", 0o644, b'{"c": 1}'),
        ("usr/bin/python3", "file", 0o755, b"#!ELF"),
        ("usr/bin/python", "hard", 0o755, "usr/bin/python3"),
        ("etc/os-release", "file", 0o644, b"ID=ubuntu\n"),
        ("dangling", "sym", 0o777, "/nowhere"),
    ], compress=False)
    fs = LayersFS([base, top])
    assert fs.read_bytes("/etc/os-release") == b"ID=ubuntu\n"
    assert fs.stat("/etc/gone") is None
    assert fs.listdir("/etc") == ["os-release"]
    assert fs.listdir("/opt/kernel") == ["c.json"]  # the opaque whiteout hid a.json and b.json
    assert fs.read_bytes("/lib/libc.so.6", limit=64 << 20) == big  # through the symlink /lib -> usr/lib
    assert fs.read_bytes("/usr/lib/libc.so.6", limit=10) == big[:10]
    assert fs.read_bytes("/etc/os-release") == b"ID=ubuntu\n"  # a read after a long one (reopens the layer)
    info = fs.stat("/usr/bin/python")
    assert info.kind == "file" and info.executable and fs.read_bytes("/usr/bin/python") == b"#!ELF"
    assert fs.stat("/dangling").kind == "symlink"
    assert fs.stat("/bin/loop").kind == "symlink" and fs.read_bytes("/bin/loop") is None
    assert fs.stat("/usr").kind == "dir" and fs.stat("/usr").mode == 0o755  # implicit parent
    assert fs.listdir("/etc/os-release") is None and fs.read_bytes("/etc") is None
    assert fs.stat("/etc/os-release/x") is None
    fs.close()


def test_a_later_file_replaces_a_directory(tmp_path):
    first = _layer(tmp_path / "a", [("x/", "dir", 0o755, None), ("x/y", "file", 0o644, b"y")])
    second = _layer(tmp_path / "b", [("x", "file", 0o600, b"now a file")])
    fs = LayersFS([first, second])
    assert fs.stat("/x").kind == "file" and fs.stat("/x").mode == 0o600
    assert fs.stat("/x/y") is None
    assert fs.read_bytes("/x") == b"now a file"
