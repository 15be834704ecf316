"""The runner's own process name (krunner/proctitle.py): what `pkill -f python` matches against."""

from __future__ import annotations

import subprocess
import sys


def test_cmdline_and_comm_become_bai_krunner():
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from krunner.proctitle import take_process_name; "
         "print(take_process_name(), flush=True); time.sleep(30)", "/usr/bin/python3"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "True"
        cmdline = open(f"/proc/{child.pid}/cmdline", "rb").read()
        comm = open(f"/proc/{child.pid}/comm").read().strip()
        assert cmdline.rstrip(b"\0") == b"bai-krunner" and comm == "bai-krunner"
        found = subprocess.run(["pgrep", "-f", "python3.*take_process_name"], capture_output=True, text=True)
        assert str(child.pid) not in found.stdout.split()
    finally:
        child.kill()
        child.wait()
