"""The sample programs the smoke checks run: a view onto krunner's language table.

Each runtime's :class:`~krunner.runtimes.languages.SmokeSample` lives in its ``Language``
entry, so adding a runtime is one entry there. Every sample prints ``MARKER`` followed by
``6*7`` computed by the language, so a check proves the code ran (not just that text was
echoed). ``fail`` must end with a non-zero exit code; ``slow`` must run for ~30 s unless
interrupted. Batch samples are written into ``/home/work`` under ``file`` and run with the
runtime's ``*`` heuristics (``build *`` / ``exec *``).
"""

from __future__ import annotations

from krunner.runtimes.languages import LANGUAGES, SMOKE_MARKER, SmokeSample, lookup

MARKER = SMOKE_MARKER
EXPECTED = f"{MARKER}42"
Sample = SmokeSample
#: runtime name → its sample (the runtimes that have one)
SAMPLES: dict[str, SmokeSample] = {lang.name: lang.smoke for lang in LANGUAGES if lang.smoke is not None}


def sample_for(runtime_type: str) -> SmokeSample | None:
    language = lookup(runtime_type)
    return language.smoke if language is not None else None
