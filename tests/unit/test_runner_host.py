"""The runner on the host: real ZeroMQ, real processes, no Docker (fast)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests import scenarios
from tests.kernels import REPO_ROOT, HostKernel, wait_until


@pytest.fixture(scope="module")
def shell_kernel():
    with HostKernel("shell") as k:
        yield k


@pytest.fixture(scope="module")
def python_kernel():
    with HostKernel("python", sys.executable) as k:
        yield k


def test_status_and_apps(shell_kernel):
    scenarios.status_and_apps(shell_kernel.client())


def test_every_op_gets_its_reply(shell_kernel):
    scenarios.replies_for_every_op(shell_kernel.client())


def test_garbage_frames_then_query(shell_kernel):
    scenarios.garbage_frames_then_query(shell_kernel.client(), "echo fine", "fine\n")


def test_batch_sequencing(shell_kernel):
    scenarios.batch_sequencing(shell_kernel.client())


def test_interrupt_nested_shell(shell_kernel):
    scenarios.interrupt_nested_shell(shell_kernel.client(), scenarios.SLEEP_PROBE)


def test_pty_commands_and_respawn(shell_kernel):
    c = shell_kernel.client()
    r = c.query("%ping")
    assert (r.stdout, r.exit_code) == ("pong!", 0)
    r = c.query("%resize 40 120")
    assert r.stdout == "OK; terminal resized to 40 lines and 120 columns"
    r = c.query("%resize forty 1")
    assert r.exit_code == 2 and "two positive integers" in r.stderr
    r = c.query("%bogus")
    assert r.exit_code == 127 and "Invalid command" in r.stderr
    assert c.query("%ping").exit_code == 0, "exactly one finished per command"
    pty = shell_kernel.pty_client()
    time.sleep(0.3)
    pty.type("stty size; echo $((6*7))\n")
    screen = pty.read_until(b"42\r\n")
    assert b"40 120" in screen
    pty.type("exit\n")
    pty.read_until(b"restarting")
    pty.type("echo back$((1+1))\n")
    pty.read_until(b"back2")


def test_python_query(python_kernel):
    scenarios.python_query_basics(python_kernel.client())


def test_python_media(python_kernel):
    scenarios.python_media(python_kernel.client())


def test_python_input(python_kernel):
    scenarios.python_input(python_kernel.client())


def test_python_batch_input(python_kernel):
    scenarios.python_batch_input(python_kernel.client(), sys.executable)


def test_python_interrupt(python_kernel):
    scenarios.python_interrupt(python_kernel.client())


def test_python_completion(python_kernel):
    scenarios.python_completion(python_kernel.client())


def test_user_processes_do_not_inherit_runner_only_settings(python_kernel):
    """The runner skips pydantic's plugin scan at start-up; user code must not see that setting."""
    c = python_kernel.client()
    r = c.query("import os; print(repr(os.environ.get('PYDANTIC_DISABLE_PLUGINS')))")
    assert r.stdout == "None\n", r.stderr
    c.send("exec", "echo \"[${PYDANTIC_DISABLE_PLUGINS-unset}]\"")
    assert c.collect().stdout == "[unset]\n"


def test_python_repl_death_is_reported_and_recovered(python_kernel):
    c = python_kernel.client()
    r = c.query("import os\nos.kill(os.getpid(), 9)")
    assert r.exit_code == -9 and "variables are lost" in r.stderr
    assert c.query("print('reborn')").stdout == "reborn\n"


def test_sigterm_stops_children():
    marker = "4242.5"
    with HostKernel("shell") as k:
        c = k.client()
        c.send("exec", f"sh -c 'sleep {marker}'")
        time.sleep(0.4)
        k.proc.send_signal(signal.SIGTERM)
        assert k.proc.wait(10) == 0

        def sleeper_alive() -> bool:
            out = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
            return bool(out.stdout.strip())

        assert wait_until(lambda: not sleeper_alive(), timeout=3)


@pytest.mark.parametrize("module", ["krunner", "ai.backend.kernel"])
def test_unknown_runtime_type_is_a_clear_error(module):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run([sys.executable, "-m", module, "cobol"], capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert "unknown runtime type 'cobol'" in out.stderr and "python" in out.stderr
    assert "Traceback" not in out.stderr


def test_app_runtime_has_no_query_mode():
    with HostKernel("app") as k:
        c = k.client()
        r = c.query("print(1)")
        assert r.exit_code == 127
        assert len(r.stderr.strip().splitlines()) == 1 and "no query mode" in r.stderr


def test_services_lifecycle():
    ports = dict(zip(("web", "slow", "scripted"), __import__("tests.kernels", fromlist=["free_ports"]).free_ports(3)))
    with HostKernel("python", sys.executable, service_defs=scenarios.write_service_defs) as k:
        scenarios.services_lifecycle(k.client(), ports, lambda p: p)
