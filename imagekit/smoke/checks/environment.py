"""Environment probes: what the entrypoint needs, uid-match, the terminal's terminfo.

Probes run with krunner's own interpreter inside the container, so they work in
images that have no shell or tools at all.
"""

from __future__ import annotations

from ..model import CheckFailed
from ..session import SmokeSession, container_env, probe
from . import Check

ENTRYPOINT_PROBE = r"""
import json, os
print(json.dumps({p: os.path.exists(p) for p in ("/bin/sh", "/etc/passwd", "/etc/group", "/tmp")}))
"""

UID_PROBE = r"""
import json, os
runner = None
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        continue
    # krunner calls itself bai-krunner (as upstream's runner does); before that, and for runners that
    # do not rename themselves, it is the python running -m ai.backend.kernel (pid 1 is the container's init)
    if cmd[0] == b"bai-krunner" or (pid != "1" and b"-m" in cmd and b"ai.backend.kernel" in cmd):
        uid = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("Uid:"))
        runner = uid if runner is None else max(runner, uid)
st = os.stat("/home/work")
print(json.dumps({"runner_uid": runner, "home_uid": st.st_uid, "home_gid": st.st_gid}))
"""

TERMINFO_PROBE = r"""
import json, os
dirs = ("/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo", "/usr/lib/terminfo")
print(json.dumps([d for d in dirs if os.path.exists(os.path.join(d, "x", "xterm"))]))
"""


def entrypoint_requirements(session: SmokeSession) -> str:
    found = probe(session, ENTRYPOINT_PROBE)
    missing = [p for p, ok in found.items() if not ok]
    if "/tmp" in missing or "/etc/passwd" in missing:
        raise CheckFailed(f"missing {', '.join(missing)}: the entrypoint and services need them")
    note = "; no /bin/sh: string commands in service-defs and bootstrap.sh cannot run" if "/bin/sh" in missing else ""
    return f"/etc/passwd, /etc/group, /tmp present{note}"


def uid_match(session: SmokeSession) -> str:
    if "uid-match" not in session.facts.features:
        return "image does not declare uid-match (the runner keeps the image's user)"
    found = probe(session, UID_PROBE)
    want = int(container_env(session, "LOCAL_USER_ID") or 1000)
    if found["runner_uid"] != want:
        raise CheckFailed(f"the runner runs as uid {found['runner_uid']}, expected LOCAL_USER_ID={want}")
    if found["home_uid"] != want:
        raise CheckFailed(f"/home/work is owned by uid {found['home_uid']}, expected {want}")
    return f"runner and /home/work owned by uid {want}"


def terminfo(session: SmokeSession) -> str:
    dirs = probe(session, TERMINFO_PROBE)
    if not dirs:
        raise CheckFailed(
            "no terminfo entry for xterm: full-screen programs in the web terminal, sshd and PTY mode will break",
            "install ncurses-base (Debian/Ubuntu) or ncurses-terminfo-base (Alpine)",
        )
    return f"xterm terminfo in {dirs[0]}"


CHECKS = [
    Check("env.entrypoint", "entrypoint requirements", entrypoint_requirements),
    Check("env.uid-match", "uid-match ownership", uid_match),
    Check("env.terminfo", "terminfo for the terminal", terminfo),
]
