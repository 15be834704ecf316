"""What a probe measured, in one shape for the tests (assert on it) and the comparison script
(print it beside upstream's).

A probe never hangs: a wait that ran out is recorded as ``wedged (>N s)``, a runner that died
as ``container exited (code N)``; both are figures, not exceptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: every probe's figures of this process (printed at the end of the pytest session)
RECORDED: list[Figures] = []


def wedged(seconds: float) -> str:
    return f"wedged (>{seconds:g} s)"


def exited(code: int | None) -> str:
    return f"container exited (code {code})"


@dataclass
class Figures:
    """Named figures of one probe against one runner, plus whether it met the row's goal."""

    probe: str
    runner: str
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the row's goal met (None: not judged)
    ok: bool | None = None
    #: a short verdict for the table ("answered after 0.3 s", "wedged (>60 s)", …)
    verdict: str = ""

    def __setitem__(self, name: str, value: Any) -> None:
        self.values[name] = value

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def judge(self, ok: bool, verdict: str) -> Figures:
        self.ok, self.verdict = ok, verdict
        return self

    def render(self) -> str:
        body = ", ".join(f"{k}={_fmt(v)}" for k, v in self.values.items())
        head = f"[{self.runner}] {self.probe}: {self.verdict or ('ok' if self.ok else 'not ok' if self.ok is False else '')}"
        notes = "".join(f"\n    note: {n}" for n in self.notes)
        return f"{head}\n    {body}{notes}"

    def as_json(self) -> dict[str, Any]:
        return {"probe": self.probe, "runner": self.runner, "ok": self.ok, "verdict": self.verdict,
                "values": self.values, "notes": self.notes}

    def record(self) -> Figures:
        """Print now (visible with ``-s`` and in failure reports) and keep for the session summary."""
        RECORDED.append(self)
        print(self.render(), flush=True)
        return self


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)[:200]
    return str(v)


# -- assertions on figures (generous bounds: these are reliability figures, not timings) ----------


def assert_goal(figs: Figures) -> None:
    assert figs.ok, figs.render()


def assert_no_bytes_lost(figs: Figures, key: str = "bytes_lost") -> None:
    assert figs.get(key) == 0, figs.render()


def assert_peak_over_idle(figs: Figures, max_mib: float, key: str = "peak_over_idle_mib") -> None:
    value = figs.get(key)
    assert isinstance(value, (int, float)) and value <= max_mib, figs.render()


def assert_recovered(figs: Figures, max_seconds: float, key: str = "seconds_to_recover") -> None:
    value = figs.get(key)
    assert isinstance(value, (int, float)) and value <= max_seconds, figs.render()
