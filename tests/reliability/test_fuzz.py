"""Fuzzing the REPL channel (issue 15): a fixed seed, a few random seeds per run, and the
minimised cases that once wedged the runner.

The seed of every run is printed (``-s`` or the "reliability figures" summary); to replay one:
``.venv/bin/python -m tests.reliability.ddmin --seed N --count M`` shrinks a failing seed to a
minimal case, which then belongs in ``cases/``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from . import fuzz
from .ddmin import load_case
from .figures import assert_goal
from .probes import probe_fuzz, probe_queued_prompts

FIXED_SEED = 1
FIXED_COUNT = int(os.environ.get("KRUNNER_FUZZ_COUNT", "10000"))
RANDOM_SEEDS = int(os.environ.get("KRUNNER_FUZZ_RANDOM_SEEDS", "2"))
RANDOM_COUNT = 3000
CASES = sorted((Path(__file__).parent / "cases").glob("*.json"))


def test_fuzz_fixed_seed(fresh_ours):
    """10,000 fuzzed messages sent flat out (as the issue's probe): no crash, every owed reply, a
    later query answered after one interrupt, memory back within 10% of idle (anon memory of the
    container's cgroup)."""
    figs = probe_fuzz(fresh_ours, FIXED_SEED, FIXED_COUNT, pace=0).record()
    assert_goal(figs)


@pytest.mark.parametrize("index", range(RANDOM_SEEDS))
def test_fuzz_random_seed(fresh_ours, index):
    ours = fresh_ours
    seed = random.SystemRandom().randrange(1 << 31)
    print(f"fuzz seed {seed} ({RANDOM_COUNT} messages): replay with "
          f"`.venv/bin/python -m tests.reliability.ddmin --seed {seed} --count {RANDOM_COUNT}`")
    ours.close_client()
    result = fuzz.run_messages(ours.kc.repl_in_port, ours.kc.repl_out_port,
                               fuzz.generate(seed, fuzz.FuzzConfig(count=RANDOM_COUNT)), alive=ours.alive)
    assert result.ok, f"seed {seed}: {result.summary()}\n{result}"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_minimised_case(fresh_ours, case):
    ours = fresh_ours
    """A ddmin-minimised sequence (tests/reliability/cases/) replayed: it must not wedge again."""
    ours.close_client()
    result = fuzz.run_messages(ours.kc.repl_in_port, ours.kc.repl_out_port, load_case(case), alive=ours.alive,
                               recover_timeout=15)
    assert result.ok, f"{case.name}: {result.summary()}\n{result}"


def test_interrupt_releases_queued_prompts(ours):
    """The fuzz wedge, minimised by hand to its cause: cells waiting for input are queued; one
    interrupt ends the running one *and* cancels the queued one (exit 130), so the query sent
    after the interrupt is answered."""
    figs = probe_queued_prompts(ours).record()
    assert_goal(figs)
    assert figs["exit_codes"][1] == 130 and figs["exit_codes"][2] == 0, figs.render()


def test_deeply_nested_json_is_a_clear_error(ours):
    c = ours.client(fresh=True)
    c.send("complete", b"[" * 100_000 + b"]" * 100_000)
    _, payload = c.recv({"completion"}, timeout=30)
    assert "nested too deeply" in payload.decode(), payload[:300]


@pytest.mark.parametrize("filler", ["[", "a", " "])
def test_huge_completion_request_does_not_hold_back_queries(ours, filler):
    """Found by the random seeds 280792038 and 1059015487 (3,000 paced messages): a `complete` whose
    code is one 10 MB line kept the REPL's command reader in the completer for minutes, and every
    query behind it waited on the command pipe. The runner now sends the completer only the
    cursor's line, at most 4 KB of it."""
    c = ours.client(fresh=True, timeout=30)
    c.send("complete", b'{"code": "' + filler.encode() * 10_000_000 + b'"}')
    c.send("code", "print('after the huge completion')")
    run = c.collect(timeout=30)
    assert run.stdout == "after the huge completion\n", run.stderr
    _, payload = c.recv({"completion"}, timeout=30)
    assert "suggestions" in payload.decode()
