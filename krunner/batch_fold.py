"""Batch steps as one run on the wire, so a detaching client loses nothing.

The stock agent sends ``clean``, ``build`` and ``exec`` back to back. When its
client sees ``clean-finished`` or ``build-finished`` it detaches the run's
output queue and only re-attaches when the user's next ``continue`` call comes
in; every record in between is dropped, ``finished`` included. The runner never
learns when that ``continue`` arrives, so no delay can make the step markers
safe.

krunner therefore *folds* a batch: when a ``clean`` or ``build`` step ends and
the following step of the same batch is already queued (or arrives within
:data:`FOLLOWUP_GRACE_SECONDS`), the intermediate marker is not sent. The whole
batch then ends with a single ``finished`` whose payload carries the exit code
of the last step that ran and, as an extra key every client ignores, the exit
codes of the folded steps::

    {"exitCode": 0, "steps": {"clean": 0, "build": 0}}

A client that sends one step at a time still gets every marker. See
docs/protocol.md ("Batch mode").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import Op

#: how long a finished clean/build step waits for the next step of its batch to arrive
FOLLOWUP_GRACE_SECONDS = 0.5
#: the step that continues a batch after each step
NEXT_STEP: dict[Op, Op] = {Op.CLEAN: Op.BUILD, Op.BUILD: Op.EXEC}


@dataclass
class BatchFold:
    """The exit codes of the steps folded into the batch that is running."""

    steps: dict[str, int | None] = field(default_factory=dict)

    def fold(self, op: Op, exit_code: int | None) -> None:
        self.steps[op.value] = exit_code

    def take(self) -> dict[str, int | None]:
        steps, self.steps = self.steps, {}
        return steps
