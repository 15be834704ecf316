"""Assemble the krunner bundle; runs INSIDE the builder container with Debian's python3.

Not imported by the host.  Invoked by :mod:`imagekit.bundle.bundle_build` as::

    python3 /src/bundle/assemble.py /src/bundle/job.json

with ``job.json`` = ``{"prefix", "requirements", "format", "variant", "arch",
"version", "inputs_hash", "tarball", "xz_threads"}``.

``arch`` other than the builder's own (``aarch64`` in the amd64 cross builder,
``builder-cross/Dockerfile``) is a cross build: CPython, its stdlib modules and libraries come
from Debian's arm64 packages, PyPI wheels are chosen by platform tag, the C tools are compiled by
``<triplet>-gcc -static`` with the target's musl specs, the static sshd tools are the ones the
cross builder image compiled the same way, shared libraries are resolved from ``readelf`` (no
``ldd``), and the self-checks run only if the kernel can execute the foreign binaries (binfmt emulation).

Inputs mounted read-only:
``/src/krunner``, ``/src/ai``, ``/src/bundle`` (this file + ``csrc/``) and
``/src/webterm-assets``; the results go to ``/out``.

Layout built under ``/stage<prefix>`` (the prefix is ``/opt/backend.ai``)::

    bin/python            static launcher (ld.so --library-path … python3.11-real)
    bin/python3, bin/python3.11 -> python
    bin/python3.11-real   Debian's CPython ELF
    lib/ld-linux-x86-64.so.2, lib/lib*.so*   every shared library needed
    lib/python3.11/       trimmed stdlib (+ site-packages with krunner and deps)
    kernel/               the /opt/kernel tools (entrypoint, su-exec, dropbearmulti, sftp-server,
                          webterm-assets)
    lib/python<agent>/site-packages/ai/backend/{kernel,helpers}/
                          empty mount targets: a stock agent binds its own runner there (it reads
                          <agent> from the agent package); our interpreter never looks there
    MANIFEST.json         file list with sha256/mode (not listing itself)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

PY_VER = "3.11"
REAL_NAME = f"python{PY_VER}-real"
#: per architecture: the Debian multiarch triplet and the dynamic loader's file name
ARCHES = {
    "x86_64": {"triplet": "x86_64-linux-gnu", "loader": "ld-linux-x86-64.so.2"},
    "aarch64": {"triplet": "aarch64-linux-gnu", "loader": "ld-linux-aarch64.so.1"},
}
HOST_ARCH = platform.machine()
#: set by main() from the job (the defaults are the builder's own architecture)
ARCH = HOST_ARCH
TRIPLET = ARCHES[HOST_ARCH]["triplet"]
LOADER = ARCHES[HOST_ARCH]["loader"]
#: the arm64 python3.11-minimal package unpacked by the cross builder (its interpreter ELF)
CROSS_PYTHON_ROOT = Path("/opt/arm64-python")
STAGE = Path("/stage")
OUT = Path("/out")
SRC = Path("/src")
#: the static intrinsic sshd tools that the builder image compiled (builder/build-sshd-tools.sh)
SSHD_TOOLS = Path("/opt/sshd-tools")
SSHD_TOOL_NAMES = ("dropbearmulti", "sftp-server")
STDLIB_DROP_DIRS = {"test", "tests", "idle_test", "idlelib", "tkinter", "ensurepip", "turtledemo", "__pycache__",
                    "site-packages", "dist-packages", "lib2to3"}
STDLIB_DROP_FILES = {"turtle.py"}
# nis pulls in libnsl/libtirpc/krb5, _dbm libdb: both optional, both dropped
DYNLOAD_DROP = re.compile(r"^(_test|_xxtest|_ctypes_test|xxlimited|_xxsubinterpreters|_tkinter|nis\.|_dbm\.|ossaudiodev\.)")
# Always shipped even if no NEEDED entry names them (glibc dlopens libgcc_s for thread cancellation).
ALWAYS_LIBS = ("libgcc_s.so.1",)
IMPORT_CHECK = (
    "import sys, os, ssl, hashlib, ctypes, sqlite3, lzma, bz2, zlib, decimal, uuid, json, asyncio, socket, "
    "select, termios, fcntl, pty, resource, multiprocessing, readline, curses, zmq, uvloop, msgpack, pydantic, "
    "ptyprocess, jinja2, markupsafe, websockets, websockets.asyncio.server, krunner.__main__, krunner.entrypoint, "
    "krunner.webterm, krunner.webterm.server, "
    "ai.backend.kernel, krunner.proctitle; "
    "import subprocess; "
    "out = subprocess.run([sys.executable, '-s', '-c', 'import sys; print(sys.prefix, sys.executable)'], "
    "capture_output=True, text=True, check=True).stdout.split(); "
    "print(sys.prefix, sys.exec_prefix, sys.executable, *out, zmq.zmq_version(), ssl.OPENSSL_VERSION)"
)


def log(msg: str) -> None:
    print(f"assemble: {msg}", flush=True)


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def is_cross() -> bool:
    return ARCH != HOST_ARCH


def tool(name: str) -> str:
    """A binutils/gcc tool for the target architecture (``aarch64-linux-gnu-strip`` in a cross build)."""
    return f"{TRIPLET}-{name}" if is_cross() else name


def foreign_part(name: str) -> bool:
    """A stdlib file of another architecture (the cross builder has both arches' modules side by side),
    or the target's own ``config-X.Y-<triplet>`` (build files)."""
    others = [a["triplet"] for a in ARCHES.values() if a["triplet"] != TRIPLET]
    return any(name.endswith(f"-{t}.so") or (name.startswith("_sysconfigdata_") and name.endswith(f"_{t}.py"))
               or name == f"config-{PY_VER}-{t}" for t in others) or name == f"config-{PY_VER}-{TRIPLET}"


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def copy_stdlib(dest: Path) -> None:
    src = Path(f"/usr/lib/python{PY_VER}")

    def ignore(directory: str, names: list[str]) -> set[str]:
        dropped = {n for n in names if n in STDLIB_DROP_DIRS or n in STDLIB_DROP_FILES or foreign_part(n)}
        if Path(directory).name == "lib-dynload":
            dropped |= {n for n in names if DYNLOAD_DROP.match(n)}
        return dropped

    shutil.copytree(src, dest, symlinks=False, ignore=ignore)
    # Debian's (frozen) site module never adds lib/pythonX.Y/site-packages outside a venv, but it
    # does add lib/pythonX.Y/dist-packages: make that an alias of site-packages (the upstream layout).
    (dest / "site-packages").mkdir()
    (dest / "dist-packages").symlink_to("site-packages")


def pip_install(site_packages: Path, requirements: list[str]) -> None:
    venv = Path("/tmp/pip-venv")
    run("/usr/bin/python3", "-m", "venv", str(venv))
    cross: list[str] = []
    if is_cross():  # wheels for the target: manylinux tags up to the target's glibc (Debian 12: 2.36)
        cross = ["--implementation", "cp", "--python-version", PY_VER, "--abi", f"cp{PY_VER.replace('.', '')}"]
        for minor in range(36, 16, -1):
            cross += ["--platform", f"manylinux_2_{minor}_{ARCH}"]
        cross += ["--platform", f"manylinux2014_{ARCH}", "--platform", f"linux_{ARCH}"]
    run(str(venv / "bin/pip"), "install", "--no-cache-dir", "--disable-pip-version-check", "--progress-bar", "off",
        "--only-binary=:all:", "--no-compile", *cross, "--target", str(site_packages), *requirements)
    shutil.rmtree(site_packages / "bin", ignore_errors=True)
    for so in site_packages.rglob("*.so*"):
        if so.is_file() and is_elf(so):
            subprocess.run([tool("strip"), "--strip-unneeded", str(so)], check=False)


def copy_sources(site_packages: Path) -> None:
    # what an installed package never has (the same names imagekit.context_images leaves out of the hash)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".pytest_cache", ".ruff_cache", ".mypy_cache")
    for name in ("krunner", "ai"):
        shutil.copytree(SRC / name, site_packages / name, ignore=ignore)


def _dynamic_section(elf: Path) -> tuple[list[str], list[str]]:
    """``(NEEDED names, RUNPATH/RPATH directories)`` of *elf*, from ``readelf -d``."""
    proc = subprocess.run([tool("readelf"), "-dW", str(elf)], capture_output=True, text=True)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", proc.stdout)
    paths: list[str] = []
    for value in re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library (?:runpath|rpath): \[([^\]]+)\]", proc.stdout):
        paths += [p.replace("${ORIGIN}", str(elf.parent)).replace("$ORIGIN", str(elf.parent)) for p in value.split(":")]
    return needed, paths


def cross_ldd(elf: Path) -> dict[str, str | None]:
    """What ``ldd`` tells natively, from ``readelf`` alone: every library *elf* needs (transitively),
    resolved in the RUNPATH and the target's multiarch directories (``None``: not found)."""
    system = [f"/lib/{TRIPLET}", f"/usr/lib/{TRIPLET}"]
    found: dict[str, str | None] = {}
    needed, runpath = _dynamic_section(elf)
    queue = [(name, runpath) for name in needed]
    while queue:
        name, search = queue.pop()
        if name in found:
            continue
        hit = next((str(Path(d, name).resolve()) for d in [*search, *system] if Path(d, name).is_file()), None)
        found[name] = hit
        if hit is not None:
            sub, sub_runpath = _dynamic_section(Path(hit))
            queue += [(n, sub_runpath) for n in sub]
    return found


def collect_libraries(prefix: Path) -> list[str]:
    """Copy every shared library the ELF files under *prefix* need into ``prefix/lib``."""
    libdir = prefix / "lib"
    needed: dict[str, str] = {}
    unresolved: dict[str, list[str]] = {}
    loader_src = None
    elves = [p for p in prefix.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p)]
    for elf in elves:
        if elf.parent == libdir:
            continue
        if is_cross():
            for name, path in cross_ldd(elf).items():
                if name == LOADER:
                    continue
                if path is None:
                    unresolved.setdefault(name, []).append(str(elf.relative_to(prefix)))
                elif not Path(path).is_relative_to(prefix):
                    needed[name] = path
            continue
        proc = subprocess.run(["ldd", str(elf)], capture_output=True, text=True)
        if proc.returncode != 0 and "not a dynamic executable" in (proc.stdout + proc.stderr):
            continue
        for line in proc.stdout.splitlines():
            line = line.strip()
            m = re.match(r"^(\S+) => (\S+)? ?\(0x[0-9a-f]+\)$", line) or re.match(r"^(\S+) => (not found)$", line)
            if m:
                name, path = m.group(1), m.group(2)
                if path in (None, "not found"):
                    unresolved.setdefault(name, []).append(str(elf.relative_to(prefix)))
                elif not Path(path).resolve().is_relative_to(prefix):
                    needed[name] = str(Path(path).resolve())
                continue
            m = re.match(r"^(/\S*ld-linux\S*) \(0x[0-9a-f]+\)$", line)
            if m:
                loader_src = str(Path(m.group(1)).resolve())
    if unresolved:
        # a module whose libraries are not installed is dropped rather than shipped broken
        for name, users in sorted(unresolved.items()):
            for user in users:
                log(f"dropping {user}: needs {name}, which is not installed")
                (prefix / user).unlink(missing_ok=True)
    for name in ALWAYS_LIBS:
        for d in (f"/lib/{TRIPLET}", f"/usr/lib/{TRIPLET}"):
            if Path(d, name).exists():
                needed.setdefault(name, str(Path(d, name).resolve()))
    if is_cross():
        loader_src = str(Path(f"/lib/{TRIPLET}", LOADER).resolve())
    if loader_src is None:
        raise SystemExit("assemble: no dynamic loader found in ldd output")
    shutil.copy2(loader_src, libdir / LOADER)
    for name, path in sorted(needed.items()):
        if name == LOADER:
            continue
        shutil.copy2(path, libdir / name)
    return sorted([LOADER, *needed])


def compile_c(source: str, output: Path, *defines: str) -> None:
    """A static executable: musl-gcc natively; ``<triplet>-gcc`` with the target's musl specs in a cross build."""
    output.parent.mkdir(parents=True, exist_ok=True)
    cc = ["musl-gcc" if shutil.which("musl-gcc") else "gcc"]
    if is_cross():
        cc = [f"{TRIPLET}-gcc", "-specs", f"/usr/lib/{ARCH}-linux-musl/musl-gcc.specs"]
    run(*cc, "-static", "-Os", "-s", "-Wall", "-Werror", f'-DLOADER_NAME="{LOADER}"', *defines, "-o", str(output),
        str(SRC / "bundle/csrc" / source))
    output.chmod(0o755)


def kernel_tools(prefix: Path) -> None:
    kernel = prefix / "kernel"
    compile_c("launcher.c", kernel / "entrypoint", "-DFIXED_PREFIX",
              '-DEXTRA_ARGS="-s","-m","krunner.entrypoint"')
    # upstream agents use /opt/kernel/entrypoint.sh as the container EntryPoint: the same binary
    shutil.copy2(kernel / "entrypoint", kernel / "entrypoint.sh")
    compile_c("su-exec.c", kernel / "su-exec")
    sshd_tools(kernel)
    assets = SRC / "webterm-assets"
    if assets.is_dir() and any(assets.iterdir()):
        shutil.copytree(assets, kernel / "webterm-assets")
    else:
        log("no web terminal assets given; kernel/webterm-assets omitted")


def is_static_elf(path: Path) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP), i.e. one that needs no loader."""
    proc = subprocess.run([tool("readelf"), "-lW", str(path)], capture_output=True, text=True)
    return proc.returncode == 0 and "INTERP" not in proc.stdout and "Program Headers" in proc.stdout


def sshd_tools(kernel: Path) -> None:
    """Copy the static dropbearmulti and sftp-server, which the builder image compiled (build-sshd-tools.sh)."""
    versions = SSHD_TOOLS / "VERSIONS"
    if versions.is_file():
        log("intrinsic sshd tools from Debian sources: " + ", ".join(versions.read_text().split("\n")[:2]))
    for name in SSHD_TOOL_NAMES:
        src = SSHD_TOOLS / name
        if not (src.is_file() and is_elf(src) and is_static_elf(src)):
            raise SystemExit(f"assemble: {src} is missing or not a static ELF executable (rebuild the builder image)")
        shutil.copy2(src, kernel / name)
        (kernel / name).chmod(0o755)
    if not can_execute(kernel / "dropbearmulti"):
        log(f"dropbearmulti check skipped: this builder cannot execute {ARCH} binaries")
        return
    # a smoke test outside any chroot: the multi-call binary dispatches on its first argument
    key = Path("/tmp/sshd-tools-check-key")
    key.unlink(missing_ok=True)
    run(str(kernel / "dropbearmulti"), "dropbearkey", "-t", "ed25519", "-f", str(key),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    key.unlink()


def agent_mount_targets(prefix: Path, agent_python: str) -> None:
    """Empty directories where a stock agent bind-mounts its own runner packages.

    The volume is mounted read-only, so the targets must exist or the container fails to
    start; they sit under a Python version that is not ours, so the binds never shadow krunner.
    """
    if agent_python == PY_VER:
        raise SystemExit(f"assemble: the agent's Python version must differ from the bundle's ({PY_VER})")
    for name in ("kernel", "helpers"):
        (prefix / "lib" / f"python{agent_python}" / "site-packages" / "ai" / "backend" / name).mkdir(parents=True)


def volume_version(files: list[dict]) -> int:
    """The integer in the volume name, derived from the content (a 10-digit number).

    A stock agent creates a volume only when no volume of that name exists, so the name must
    change whenever the content does; 10 digits keep it clear of upstream's small counters.
    """
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return 1_000_000_000 + int(digest[:12], 16) % 1_000_000_000


def normalize_modes(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode
        if p.is_dir():
            p.chmod(0o755)
        else:
            p.chmod(0o755 if mode & 0o111 else 0o644)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_list(root: Path) -> list[dict]:
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if rel in ("MANIFEST.json", "VERSION"):
                continue
            st = p.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                entries.append({"path": rel, "type": "symlink", "target": os.readlink(p)})
            elif stat.S_ISDIR(st.st_mode):
                entries.append({"path": rel, "type": "dir", "mode": f"{mode:04o}"})
            else:
                entries.append({"path": rel, "type": "file", "mode": f"{mode:04o}", "size": st.st_size,
                                "sha256": sha256(p)})
    entries.sort(key=lambda e: e["path"])
    return entries


def write_tarball(root: Path, manifest_text: str, tar_path: Path, threads: int) -> None:
    plain = tar_path.with_suffix("")  # .tar
    names = ["MANIFEST.json"] + [e["path"] for e in json.loads(manifest_text)["files"]]

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(plain, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in names:
            tar.add(root / name, arcname=name, recursive=False, filter=reset)
    run("xz", f"-T{threads}", "-6", "-f", str(plain))


def set_arch(arch: str) -> None:
    global ARCH, TRIPLET, LOADER
    if arch not in ARCHES:
        raise SystemExit(f"assemble: unknown arch {arch!r} (known: {', '.join(ARCHES)})")
    if arch != HOST_ARCH and not (CROSS_PYTHON_ROOT / f"usr/bin/python{PY_VER}").is_file():
        raise SystemExit(f"assemble: a {arch} bundle needs the cross builder image (no {CROSS_PYTHON_ROOT})")
    ARCH, TRIPLET, LOADER = arch, ARCHES[arch]["triplet"], ARCHES[arch]["loader"]


def can_execute(path: Path) -> bool:
    """True when *path* (a static target ELF) runs here: always natively; in a cross build only under emulation."""
    if not is_cross():
        return True
    try:
        subprocess.run([str(path)], capture_output=True, timeout=120)
        return True
    except OSError:  # ENOEXEC: the kernel has no binfmt handler for the target
        return False


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    set_arch(job.get("arch", HOST_ARCH))
    prefix = STAGE / job["prefix"].lstrip("/")
    if STAGE.exists():
        shutil.rmtree(STAGE)
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib").mkdir()
    log("copying CPython and its stdlib")
    interpreter = CROSS_PYTHON_ROOT / f"usr/bin/python{PY_VER}" if is_cross() else Path(f"/usr/bin/python{PY_VER}")
    log(f"CPython for {ARCH}: {interpreter}")
    shutil.copy2(interpreter, prefix / "bin" / REAL_NAME)
    copy_stdlib(prefix / "lib" / f"python{PY_VER}")
    site_packages = prefix / "lib" / f"python{PY_VER}" / "site-packages"
    log(f"installing {len(job['requirements'])} requirements from PyPI")
    pip_install(site_packages, job["requirements"])
    copy_sources(site_packages)
    log("compiling the launcher and the /opt/kernel tools")
    compile_c("launcher.c", prefix / "bin" / "python", f'-DKRUNNER_PREFIX="{job["prefix"]}"')
    for alias in ("python3", f"python{PY_VER}"):
        (prefix / "bin" / alias).symlink_to("python")
    kernel_tools(prefix)
    agent_mount_targets(prefix, job["agent_python"])
    log("collecting shared libraries")
    libs = collect_libraries(prefix)
    log(f"shipping {len(libs)} libraries: {' '.join(libs)}")
    log("byte-compiling")
    run(f"/usr/bin/python{PY_VER}", "-m", "compileall", "-q", "-j", "2", "-s", str(STAGE), "-p", "/",
        str(prefix / "lib" / f"python{PY_VER}"), stdout=subprocess.DEVNULL)
    normalize_modes(prefix)
    if can_execute(prefix / "kernel" / "su-exec"):
        self_check(prefix, job)
    else:
        log(f"self-check skipped: this builder cannot execute {ARCH} binaries (no binfmt emulation on the host)")
    files = file_list(prefix)
    manifest = {
        "format": job["format"], "variant": job["variant"], "arch": job["arch"], "python": PY_VER,
        "agent_python": job["agent_python"], "volume_version": volume_version(files),
        "version": job["version"], "inputs_hash": job["inputs_hash"], "prefix": job["prefix"],
        "libraries": libs, "files": files,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    (prefix / "MANIFEST.json").write_text(text)
    (prefix / "MANIFEST.json").chmod(0o644)
    OUT.mkdir(parents=True, exist_ok=True)
    log("writing the tarball (xz)")
    write_tarball(prefix, text, OUT / job["tarball"], int(job.get("xz_threads", 2)))
    (OUT / "MANIFEST.json").write_text(text)
    if (prefix / "kernel").is_dir():
        shutil.copytree(prefix / "kernel", OUT / "kernel", symlinks=True)
    log("done")


def self_check(prefix: Path, job: dict) -> None:
    """The bundle's interpreter imports everything in an empty chroot (no libc, no /proc)."""
    log(f"checking the bundle in an empty chroot (no libc, no /proc){' under emulation' if is_cross() else ''}")
    proc = subprocess.run(["/usr/sbin/chroot", str(STAGE), f"{job['prefix']}/bin/python", "-s", "-c", IMPORT_CHECK],
                          capture_output=True, text=True, env={"PYTHONDONTWRITEBYTECODE": "1"})
    if proc.returncode != 0:
        diag = subprocess.run(["/usr/sbin/chroot", str(STAGE), f"{job['prefix']}/bin/python", "-s", "-c",
                               "import sys, site; print(sys.prefix, sys.path, site.getsitepackages())"],
                              capture_output=True, text=True, env={"PYTHONDONTWRITEBYTECODE": "1"})
        raise SystemExit(f"assemble: bundle self-check failed:\n{proc.stdout}\n{proc.stderr}\n"
                         f"diagnosis: {diag.stdout}{diag.stderr}")
    words = proc.stdout.split()
    want = [job["prefix"], job["prefix"], f"{job['prefix']}/bin/python", job["prefix"], f"{job['prefix']}/bin/python"]
    if words[:5] != want:
        raise SystemExit(f"assemble: unexpected prefix/executable: {proc.stdout!r} (want {want})")
    log(f"self-check ok: {proc.stdout.strip()}")


if __name__ == "__main__":
    main()
