"""Sample programs the smoke checks run, per runtime-type (data only).

Each sample prints ``MARKER`` followed by ``6*7`` computed by the language, so a
check proves the code ran (not just that text was echoed). ``fail`` must end
with a non-zero exit code; ``slow`` must run for ~30 s unless interrupted.
Batch samples are written into ``/home/work`` under ``file`` and run with the
runtime's ``*`` heuristics (``build *`` / ``exec *``).
"""

from __future__ import annotations

from dataclasses import dataclass

MARKER = "bai-smoke-"
EXPECTED = f"{MARKER}42"


@dataclass(frozen=True)
class Sample:
    query: str | None  # a query-mode snippet printing EXPECTED (None: no query mode)
    fail: str | None  # a query snippet that exits non-zero
    slow: str | None  # a query snippet that sleeps ~30 s (interrupt check)
    file: str  # batch source file name
    program: str  # batch program printing EXPECTED
    rich: str | None = None  # a query snippet producing a media record
    completion: tuple[str, str] | None = None  # (prefix, a suggestion that must be offered)
    input_prompt: str | None = None  # a query snippet reading one line and printing "got <line>"


SAMPLES: dict[str, Sample] = {
    "python": Sample(
        query=f"print('{MARKER}' + str(6 * 7))",
        fail="raise SystemExit(3)",
        slow="import time\ntime.sleep(30)",
        file="main.py",
        program=f"print('{MARKER}' + str(6 * 7))\n",
        rich="class _BaiSmoke:\n    def _repr_html_(self): return '<b>bai</b>'\ndisplay(_BaiSmoke())",
        completion=("import o", "os"),
        input_prompt="line = input('bai? ')\nprint('got ' + line)",
    ),
    "shell": Sample(
        query=f"echo {MARKER}$((6*7))",
        fail="exit 3",
        slow="sleep 30",
        file="main.sh",
        program=f"echo {MARKER}$((6*7))\n",
    ),
    "c": Sample(
        query=f'#include <stdio.h>\nint main(void) {{ printf("{MARKER}%d\\n", 6 * 7); return 0; }}\n',
        fail="int main(void) { return 3; }\n",
        slow="#include <unistd.h>\nint main(void) { sleep(30); return 0; }\n",
        file="main.c",
        program=f'#include <stdio.h>\nint main(void) {{ printf("{MARKER}%d\\n", 6 * 7); return 0; }}\n',
    ),
    "cpp": Sample(
        query=f'#include <iostream>\nint main() {{ std::cout << "{MARKER}" << 6 * 7 << std::endl; return 0; }}\n',
        fail="int main() { return 3; }\n",
        slow="#include <unistd.h>\nint main() { sleep(30); return 0; }\n",
        file="main.cpp",
        program=f'#include <iostream>\nint main() {{ std::cout << "{MARKER}" << 6 * 7 << std::endl; return 0; }}\n',
    ),
    "nodejs": Sample(
        query=f"console.log('{MARKER}' + (6 * 7))",
        fail="process.exit(3)",
        slow="setTimeout(() => {}, 30000)",
        file="main.js",
        program=f"console.log('{MARKER}' + (6 * 7));\n",
    ),
    "r": Sample(
        query=f"cat(paste0('{MARKER}', 6 * 7), '\\n')",
        fail="quit(status = 3)",
        slow="Sys.sleep(30)",
        file="main.R",
        program=f"cat(paste0('{MARKER}', 6 * 7), '\\n')\n",
    ),
}


def sample_for(runtime_type: str) -> Sample | None:
    from krunner.runtimes.languages import lookup

    language = lookup(runtime_type)
    return SAMPLES.get(language.name) if language is not None else None
