"""Real kernel containers driven exactly as the Backend.AI agent drives them."""

from __future__ import annotations

import json
import time

import pytest

from tests import scenarios
from tests.kernels import DockerKernel

pytestmark = pytest.mark.docker


# ----------------------------------------------------------------------------- python image


def test_status_apps_and_container_contract(python_kernel):
    c = python_kernel.client()
    scenarios.status_and_apps(c)
    r = c.query("import os, pwd\nprint(os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name, os.getcwd(), os.environ['HOME'])")
    assert r.stdout == "1000 1000 work /home/work /home/work\n", r.stderr
    # the runner itself (the REPL's parent) runs as the kernel user, not root, under its own name
    r = c.query("print(os.stat(f'/proc/{os.getppid()}').st_uid, open(f'/proc/{os.getppid()}/cmdline').read().split('\\0')[:5])")
    assert r.stdout.startswith("1000 ") and "bai-krunner" in r.stdout, r.stdout


def test_every_op_gets_its_reply(python_kernel):
    scenarios.replies_for_every_op(python_kernel.client())


def test_garbage_frames_then_query(python_kernel):
    scenarios.garbage_frames_then_query(python_kernel.client(), "print('ok')", "ok\n")


def test_batch_sequencing_and_exit_codes(python_kernel):
    scenarios.batch_sequencing(python_kernel.client())


def test_batch_star_heuristics(python_kernel):
    c = python_kernel.client()
    c.send("exec", "rm -f main.py setup.py")
    c.collect()
    run = c.batch("*", "*", "*")
    assert (run.steps["clean"], run.steps["build"]) == (0, 0)
    assert run.exit_code == 127 and "main.py" in run.stderr
    c.send("exec", "printf 'import os\\nprint(\"batch\", os.environ[\"_BACKEND_BATCH_MODE\"])\\n' > main.py")
    assert c.collect().exit_code == 0
    run = c.batch("", "*", "*")
    assert run.exit_code == 0 and run.stdout == "batch 1\n", run.stderr


def test_task_log_is_appended():
    kernel = DockerKernel("bai-test/python:latest", "python", "/usr/bin/python3")
    try:
        (kernel.kc.work_dir / ".logs").mkdir()
        import os

        os.chown(kernel.kc.work_dir / ".logs", 1000, 1000)
        c = kernel.client()
        c.send("exec", "echo logged-line")
        assert c.collect().exit_code == 0
        logs = list((kernel.kc.work_dir / ".logs" / "task").rglob("*.log"))
        assert len(logs) == 1
        assert "logged-line" in logs[0].read_text()
    finally:
        kernel.stop()


def test_interrupt_nested_shell(python_kernel):
    scenarios.interrupt_nested_shell(python_kernel.client(), scenarios.SLEEP_PROBE)


def test_python_query(python_kernel):
    scenarios.python_query_basics(python_kernel.client())


def test_python_media(python_kernel):
    scenarios.python_media(python_kernel.client())


def test_python_input_query_mode(python_kernel):
    scenarios.python_input(python_kernel.client())


def test_python_input_batch_mode(python_kernel):
    scenarios.python_batch_input(python_kernel.client(), "python3")


def test_python_interrupt(python_kernel):
    scenarios.python_interrupt(python_kernel.client())


def test_python_completion(python_kernel):
    scenarios.python_completion(python_kernel.client())


def test_ten_megabytes_and_200k_lines(python_kernel):
    scenarios.python_big_output(python_kernel.client(timeout=60))
    scenarios.batch_binary_output(python_kernel.client(timeout=60), "python3")


# ----------------------------------------------------------------------------- shell / PTY


def test_shell_pty_mode(shell_kernel):
    c = shell_kernel.client()
    assert c.query("%ping").stdout == "pong!"
    assert c.query("%resize 33 101").stdout == "OK; terminal resized to 33 lines and 101 columns"
    r = c.query("echo from-query; id -u")
    assert r.stdout == "from-query\n1000\n"
    pty = shell_kernel.pty_client()
    time.sleep(0.3)
    pty.type("stty size; echo $((40+2))\n")
    screen = pty.read_until(b"42\r\n")
    assert b"33 101" in screen
    pty.type("exit\n")
    pty.read_until(b"restarting")
    pty.type("echo respawned-$((2*3))\n")
    pty.read_until(b"respawned-6")


# ----------------------------------------------------------------------------- other languages


def test_c_query_and_batch(gcc_kernel):
    c = gcc_kernel.client()
    r = c.query('#include <stdio.h>\nint main(void) { printf("hello from c %d\\n", 6 * 7); return 3; }')
    assert r.stdout == "hello from c 42\n" and r.exit_code == 3, r.stderr
    source = '#include <stdio.h>\\nint main(void) { puts(\\"built\\"); return 0; }\\n'
    c.send("exec", f'printf "{source}" > main.c')
    assert c.collect().exit_code == 0
    run = c.batch("*", "*", "*")
    assert run.steps["build"] == 0, run.stderr
    assert run.stdout == "built\n"
    run = c.batch("", "gcc -o main does-not-exist.c", "./main")
    assert run.steps["build"] != 0 and run.exit_code == 127
    r = c.query("int main(void) { syntax error }")
    assert r.exit_code != 0 and "error" in r.stderr


def test_nodejs_query_and_batch(nodejs_kernel):
    c = nodejs_kernel.client()
    r = c.query("console.log('node', 6 * 7); console.error('warn')")
    assert r.stdout == "node 42\n" and r.stderr == "warn\n" and r.exit_code == 0
    c.send("exec", "echo \"console.log('main ran')\" > main.js")
    assert c.collect().exit_code == 0
    run = c.batch("", "*", "*")
    assert run.stdout == "main ran\n" and run.exit_code == 0
    c.send("code", "setTimeout(() => console.log('late'), 30000)")
    time.sleep(0.5)
    c.interrupt()
    r = c.collect(timeout=10)
    assert r.exit_code != 0 and "late" not in r.stdout
    assert json.loads(json.dumps(c.get_apps().model_dump()))["status"] == "done"
