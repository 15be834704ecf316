"""Container entrypoint: become the kernel user (uid-match), then exec the runner.

As root it forks first: the child drops privileges and execs the runner, the parent stays
root as the runner's keeper (:mod:`krunner.keeper`: resumes a runner that user code stopped,
forwards signals, exits with the runner's status).

Runs as root.  ``LOCAL_USER_ID``/``LOCAL_GROUP_ID`` (default 9001) name the
uid/gid the session must run as.  The account database is edited directly
(never ``usermod``, which would chown the home directory recursively), the
user is always called ``work`` with home ``/home/work``, and privileges are
dropped in-process, so the image needs neither ``su-exec`` nor shadow-utils.

The image's ``/opt/container/bootstrap.sh`` (if executable and the image has
``/bin/sh``) runs as root after the user setup, in a *child* shell with a
timeout, so an ``exit``/``exec`` in it cannot end the entrypoint; the
variables it exports are imported afterwards.  With the krunner bundle this
module is started by the static ``/opt/kernel/entrypoint`` binary, so the image
needs no shell at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

USER_NAME = "work"
HOME = "/home/work"
DEFAULT_ID = 9001
ETC = Path(os.environ.get("KRUNNER_ETC_DIR", "/etc"))
BOOTSTRAP = Path(os.environ.get("KRUNNER_IMAGE_BOOTSTRAP", "/opt/container/bootstrap.sh"))
BOOTSTRAP_SHELL = "/bin/sh"
DEFAULT_BOOTSTRAP_TIMEOUT = 60.0
# variables a shell sets on its own; not imported from the bootstrap
_SHELL_VARS = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
# the child shell sources the script, then dumps the resulting environment (NUL-separated
# KEY=VALUE) into a private temporary file with the krunner python; its daemons inherit nothing of ours
_BOOTSTRAP_SH = 'k_script=$1; k_python=$2; k_dump=$3; k_out=$4; shift 4; . "$k_script"; exec "$k_python" -s -c "$k_dump" "$k_out"'
_DUMP_PY = (
    "import os, sys; open(sys.argv[1], 'wb').write("
    "b''.join(k.encode() + b'=' + v.encode() + b'\\0' for k, v in os.environ.items()))"
)


def _log(msg: str) -> None:
    print(f"entrypoint: {msg}", file=sys.stderr, flush=True)


def _read_db(path: Path) -> list[list[str]]:
    try:
        return [line.split(":") for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _write_db(path: Path, rows: list[list[str]]) -> None:
    tmp = path.with_name(path.name + ".krunner-tmp")
    tmp.write_text("".join(":".join(r) + "\n" for r in rows))
    if path.exists():
        st = path.stat()
        os.chmod(tmp, st.st_mode & 0o7777)
    os.replace(tmp, path)


def ensure_group(gid: int) -> str:
    path = ETC / "group"
    rows = _read_db(path)
    for row in rows:
        if len(row) >= 3 and row[2] == str(gid):
            return row[0]
    for row in rows:
        if row[0] == USER_NAME and len(row) >= 3:
            row[2] = str(gid)  # renumber the image's own 'work' group
            _write_db(path, rows)
            return USER_NAME
    rows.append([USER_NAME, "x", str(gid), ""])
    _write_db(path, rows)
    return USER_NAME


def ensure_user(uid: int, gid: int, shell: str) -> None:
    path = ETC / "passwd"
    rows = _read_db(path)
    mine = [r for r in rows if len(r) >= 7 and r[2] == str(uid)]
    rows = [r for r in rows if not (r[0] == USER_NAME and r not in mine[:1])]
    if mine:
        entry = mine[0]
        if entry[0] != USER_NAME:
            _log(f"renaming existing user {entry[0]!r} (uid {uid}) to {USER_NAME!r}")
        entry[0], entry[3], entry[5] = USER_NAME, str(gid), HOME
    else:
        rows.append([USER_NAME, "x", str(uid), str(gid), "Backend.AI kernel user", HOME, shell])
    _write_db(path, rows)
    shadow = ETC / "shadow"
    if shadow.exists():
        srows = _read_db(shadow)
        if not any(r[0] == USER_NAME for r in srows):
            srows.append([USER_NAME, "*", "19000", "0", "99999", "7", "", "", ""])
            _write_db(shadow, srows)
    check = [r for r in _read_db(path) if r[0] == USER_NAME]
    if not check or check[0][2:4] != [str(uid), str(gid)]:
        raise SystemExit(f"entrypoint: could not set up user {USER_NAME} as {uid}:{gid}")


def parse_env_dump(data: bytes) -> dict[str, str]:
    """``KEY=VALUE\\0…`` → dict (shell-internal variables dropped)."""
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key and key.decode(errors="replace") not in _SHELL_VARS:
            env[key.decode(errors="surrogateescape")] = value.decode(errors="surrogateescape")
    return env


def run_bootstrap(script: Path, argv: list[str], timeout: float) -> dict[str, str] | None:
    """Run *script* in a child ``/bin/sh``; return its exported environment, or None if skipped/failed."""
    if not script.exists():
        return None
    if not os.access(script, os.X_OK):
        _log(f"warning: {script} is not executable; skipped")
        return None
    if not os.access(BOOTSTRAP_SHELL, os.X_OK):
        _log(f"warning: {script} exists but the image has no {BOOTSTRAP_SHELL}; skipped")
        return None
    fd, dump_path = tempfile.mkstemp(prefix="krunner-bootstrap-env.")
    os.close(fd)
    try:
        cmd = [BOOTSTRAP_SHELL, "-c", _BOOTSTRAP_SH, "bootstrap", str(script), sys.executable, _DUMP_PY, dump_path, *argv]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=2)  # fd 2: the container console
        except OSError as exc:
            _log(f"warning: cannot run {script}: {exc}")
            return None
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _log(f"warning: {script} did not finish within {timeout:g}s; killed, its exports are ignored")
            proc.kill()
            proc.wait()
            return None
        data = Path(dump_path).read_bytes()
    finally:
        Path(dump_path).unlink(missing_ok=True)
    env = parse_env_dump(data)
    if not env:
        _log(f"warning: {script} ended the shell (exit {code}) before its environment could be read; "
             "its exports are ignored")
        return None
    if code != 0:
        _log(f"warning: {script} finished with exit code {code}")
    return env


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"entrypoint: {name}={raw!r} is not a number") from None


def _additional_gids() -> list[int]:
    gids = []
    for part in os.environ.get("ADDITIONAL_GIDS", "").split(","):
        part = part.strip()
        if part.isdigit():
            gids.append(int(part))
    return gids


def _bootstrap(argv: list[str]) -> None:
    try:
        timeout = float(os.environ.get("KRUNNER_BOOTSTRAP_TIMEOUT", "") or DEFAULT_BOOTSTRAP_TIMEOUT)
    except ValueError:
        timeout = DEFAULT_BOOTSTRAP_TIMEOUT
    env = run_bootstrap(BOOTSTRAP, argv, timeout)
    if env is not None:
        added = sorted(k for k in env if os.environ.get(k) != env[k])
        if added:
            _log(f"bootstrap set {', '.join(added)}")
        os.environ.clear()
        os.environ.update(env)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("entrypoint: no command given")
    if "LOCAL_USER_ID" not in os.environ:
        _log(f"LOCAL_USER_ID is not set; using {DEFAULT_ID}")
    uid = _int_env("LOCAL_USER_ID", DEFAULT_ID)
    gid = _int_env("LOCAL_GROUP_ID", DEFAULT_ID)
    shell = "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"
    os.environ.update({"HOME": HOME, "SHELL": os.environ.get("SHELL", shell)})
    Path(HOME).mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        _log(f"not running as root (uid {os.geteuid()}); starting the runner as is")
    elif uid != 0:
        ensure_group(gid)
        ensure_user(uid, gid, shell)
    _bootstrap(argv)
    if os.geteuid() == 0 and uid != 0:
        agent_sock = Path("/opt/kernel/agent.sock")
        if agent_sock.exists():
            try:
                os.chown(agent_sock, uid, gid)
            except OSError as exc:
                _log(f"cannot chown {agent_sock}: {exc}")
        # the runner runs as the kernel user, like user code: a root parent resumes it if user code
        # stops it (krunner.keeper)
        pid = os.fork()
        if pid:
            from .keeper import keep

            sys.exit(keep(pid))
        os.environ.update({"USER": USER_NAME, "LOGNAME": USER_NAME})
        os.setgroups(sorted({gid, *_additional_gids()}))
        os.setgid(gid)
        os.setuid(uid)
    _log(f"starting {' '.join(argv)} as {os.getuid()}:{os.getgid()}")
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise SystemExit(f"entrypoint: cannot execute {argv[0]}: {exc}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
