"""Container entrypoint: become the kernel user (uid-match), then exec the runner.

Runs as root.  ``LOCAL_USER_ID``/``LOCAL_GROUP_ID`` (default 9001) name the
uid/gid the session must run as.  The account database is edited directly
(never ``usermod``, which would chown the home directory recursively), the
user is always called ``work`` with home ``/home/work``, and privileges are
dropped in-process, so the image needs neither ``su-exec`` nor shadow-utils.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

USER_NAME = "work"
HOME = "/home/work"
DEFAULT_ID = 9001
ETC = Path(os.environ.get("KRUNNER_ETC_DIR", "/etc"))


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
        agent_sock = Path("/opt/kernel/agent.sock")
        if agent_sock.exists():
            try:
                os.chown(agent_sock, uid, gid)
            except OSError as exc:
                _log(f"cannot chown {agent_sock}: {exc}")
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
