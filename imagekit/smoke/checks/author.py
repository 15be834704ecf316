"""The image author's own checks from the test file (see :mod:`imagekit.smoke.testfile`)."""

from __future__ import annotations

import json

from ..model import CheckFailed
from ..session import SmokeSession, container_env, probe
from ..testfile import CommandTest, FileTest
from . import Check

# Runs one command with a timeout, as the kernel user's environment would have it.
RUN_PROBE = r"""
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
env = {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
       "HOME": "/home/work", "LANG": "C.UTF-8"}
try:
    p = subprocess.run(spec["argv"], capture_output=True, timeout=spec["timeout"], cwd="/home/work", env=env)
    out = {"code": p.returncode, "stdout": p.stdout.decode(errors="replace"), "stderr": p.stderr.decode(errors="replace")}
except subprocess.TimeoutExpired:
    out = {"code": None, "timeout": True}
except OSError as e:
    out = {"code": None, "error": str(e)}
print(json.dumps(out))
"""

FILE_PROBE = r"""
import json, os, sys
path = sys.argv[1]
out = {"exists": os.path.exists(path), "executable": os.access(path, os.X_OK) and os.path.isfile(path)}
if out["exists"] and os.path.isfile(path):
    try:
        out["text"] = open(path, "rb").read(1 << 20).decode(errors="replace")
    except OSError as e:
        out["error"] = str(e)
print(json.dumps(out))
"""


def _user(session: SmokeSession, name: str) -> str:
    if name == "root":
        return "0:0"
    return f"{container_env(session, 'LOCAL_USER_ID') or 1000}:{container_env(session, 'LOCAL_GROUP_ID') or 1000}"


def command_check(test: CommandTest, index: int) -> Check:
    import re

    def run(session: SmokeSession) -> str:
        spec = json.dumps({"argv": test.argv(), "timeout": test.timeout})
        res = probe(session, RUN_PROBE, spec, user=_user(session, test.user))
        if res.get("timeout"):
            raise CheckFailed(f"did not finish within {test.timeout:g} s")
        if res.get("error"):
            raise CheckFailed(f"cannot run {test.argv()[0]}: {res['error']}")
        shown = f"stdout: {res['stdout'][-1500:]!r}\nstderr: {res['stderr'][-1500:]!r}"
        if res["code"] != test.exit_code:
            raise CheckFailed(f"exit code {res['code']}, expected {test.exit_code}", shown)
        for stream in ("stdout", "stderr"):
            pattern = getattr(test, stream)
            if pattern is not None and not re.search(pattern, res[stream], re.MULTILINE):
                raise CheckFailed(f"{stream} does not match {pattern!r}", shown)
        return f"exit {res['code']}"

    return Check(f"author.command.{index}", f"command: {test.name}", run)


def file_check(test: FileTest, index: int) -> Check:
    import re

    def run(session: SmokeSession) -> str:
        res = probe(session, FILE_PROBE, test.path, user=_user(session, "work"))
        if res["exists"] != test.exists:
            raise CheckFailed(f"{test.path} {'does not exist' if test.exists else 'exists but must not'}")
        if test.executable is not None and res["executable"] != test.executable:
            raise CheckFailed(f"{test.path} is {'not ' if test.executable else ''}executable by the kernel user")
        if test.contains is not None:
            if "text" not in res:
                raise CheckFailed(f"{test.path} cannot be read: {res.get('error', 'not a regular file')}")
            if not re.search(test.contains, res["text"], re.MULTILINE):
                raise CheckFailed(f"{test.path} does not contain {test.contains!r}")
        return "as expected"

    return Check(f"author.file.{index}", f"file: {test.path}", run)


CHECKS: list[Check] = []  # built per image from its test file by the runner
