"""Every runtime-type the runner knows, as data.

Adding a language is adding one :class:`Language` entry to ``LANGUAGES`` (its query engine,
batch heuristics and smoke-test programs); the engine of each kind and what it can do
(input, state) is in :mod:`.registry` and :mod:`.base`.
Command templates are shell text; placeholders (already shell-quoted when
substituted): ``{runtime}`` the runtime path (compiler or interpreter),
``{src}`` the snippet file of a query, ``{dir}`` its private temp directory.

Batch ``*`` heuristics: for ``build``, a ``Makefile`` in the working directory
always wins (``make``); then the language's rules are tried in order, and the
first rule whose ``when`` file exists runs.  When no rule matches, ``exec``
fails with 127 and a one-line explanation on stderr; ``build`` does the same
for compiled languages (``build_required``) and is otherwise a no-op (exit 0).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class QueryEngine(str, enum.Enum):
    PYTHON_REPL = "python-repl"  # persistent REPL in the image's own Python
    SNIPPET = "snippet"  # write the code to a file, run ``query`` on it
    SHELL = "shell"  # run the code with ``{runtime} -c``
    NONE = "none"  # query mode not available (exit 127)


@dataclass(frozen=True)
class BatchRule:
    when: str  # a path relative to the working directory that must exist
    command: str


#: what every smoke sample prints (``bai-imagekit test`` checks for it), computed by the language
SMOKE_MARKER = "bai-smoke-"


@dataclass(frozen=True)
class SmokeSample:
    """The programs ``bai-imagekit test`` runs in this runtime (each prints ``SMOKE_MARKER`` + 6*7)."""

    query: str | None  # a query-mode snippet printing the marker (None: no query mode)
    fail: str | None  # a query snippet that exits non-zero
    slow: str | None  # a query snippet that sleeps ~30 s (interrupt check)
    file: str  # batch source file name
    program: str  # batch program printing the marker
    rich: str | None = None  # a query snippet producing a media record
    completion: tuple[str, str] | None = None  # (prefix, a suggestion that must be offered)
    input_prompt: str | None = None  # a query snippet reading one line and printing "got <line>"


@dataclass(frozen=True)
class Language:
    name: str
    runtime_paths: tuple[str, ...]  # candidates when the image gives no runtime-path
    query_engine: QueryEngine = QueryEngine.SNIPPET
    query: str = ""
    source_name: str = "main.txt"
    source_prelude: str = ""
    build: tuple[BatchRule, ...] = ()
    exec: tuple[BatchRule, ...] = ()
    build_required: bool = False  # compiled languages: no build rule matching is an error
    pty: bool = False
    aliases: tuple[str, ...] = ()
    smoke: SmokeSample | None = None  # the smoke-test programs (imagekit.smoke)


C_LIBS = "-lm -lrt -pthread -ldl"
RUN_MAIN = (BatchRule("main", "./main"), BatchRule("a.out", "./a.out"))

LANGUAGES: tuple[Language, ...] = (
    Language(
        name="python",
        runtime_paths=("/usr/bin/python3", "/usr/local/bin/python3", "python3", "python"),
        query_engine=QueryEngine.PYTHON_REPL,
        build=(
            BatchRule("setup.py", "{runtime} -m pip install --user -e ."),
            BatchRule("pyproject.toml", "{runtime} -m pip install --user -e ."),
            BatchRule("requirements.txt", "{runtime} -m pip install --user -r requirements.txt"),
        ),
        exec=(BatchRule("main.py", "{runtime} main.py"),),
        smoke=SmokeSample(
            query=f"print('{SMOKE_MARKER}' + str(6 * 7))",
            fail="raise SystemExit(3)",
            slow="import time\ntime.sleep(30)",
            file="main.py",
            program=f"print('{SMOKE_MARKER}' + str(6 * 7))\n",
            rich="class _BaiSmoke:\n    def _repr_html_(self): return '<b>bai</b>'\ndisplay(_BaiSmoke())",
            completion=("import o", "os"),
            input_prompt="line = input('bai? ')\nprint('got ' + line)",
        ),
    ),
    Language(
        name="app",
        runtime_paths=("/bin/sh",),
        query_engine=QueryEngine.NONE,
    ),
    Language(
        name="shell",
        runtime_paths=("/bin/bash", "/bin/ash", "/bin/sh"),
        query_engine=QueryEngine.SHELL,
        exec=(BatchRule("main.sh", "{runtime} main.sh"),),
        pty=True,
        aliases=("bash", "sh"),
        smoke=SmokeSample(
            query=f"echo {SMOKE_MARKER}$((6*7))",
            fail="exit 3",
            slow="sleep 30",
            file="main.sh",
            program=f"echo {SMOKE_MARKER}$((6*7))\n",
        ),
    ),
    Language(
        name="c",
        runtime_paths=("gcc", "cc", "clang"),
        query="{runtime} -Wall -o {dir}/main {src} " + C_LIBS + " && {dir}/main",
        source_name="main.c",
        build=(BatchRule("main.c", "{runtime} -Wall -O2 -o ./main $(find . -name '*.c' -not -path './.*') " + C_LIBS),),
        build_required=True,
        exec=RUN_MAIN,
        smoke=SmokeSample(
            query=f'#include <stdio.h>\nint main(void) {{ printf("{SMOKE_MARKER}%d\\n", 6 * 7); return 0; }}\n',
            fail="int main(void) { return 3; }\n",
            slow="#include <unistd.h>\nint main(void) { sleep(30); return 0; }\n",
            file="main.c",
            program=f'#include <stdio.h>\nint main(void) {{ printf("{SMOKE_MARKER}%d\\n", 6 * 7); return 0; }}\n',
        ),
    ),
    Language(
        name="cpp",
        runtime_paths=("g++", "c++", "clang++"),
        query="{runtime} -Wall -o {dir}/main {src} " + C_LIBS + " && {dir}/main",
        source_name="main.cpp",
        build=(
            BatchRule("main.cpp", "{runtime} -Wall -O2 -o ./main $(find . -name '*.cpp' -not -path './.*') " + C_LIBS),
        ),
        build_required=True,
        exec=RUN_MAIN,
        aliases=("c++",),
        smoke=SmokeSample(
            query=f'#include <iostream>\nint main() {{ std::cout << "{SMOKE_MARKER}" << 6 * 7 << std::endl; return 0; }}\n',
            fail="int main() { return 3; }\n",
            slow="#include <unistd.h>\nint main() { sleep(30); return 0; }\n",
            file="main.cpp",
            program=f'#include <iostream>\nint main() {{ std::cout << "{SMOKE_MARKER}" << 6 * 7 << std::endl; return 0; }}\n',
        ),
    ),
    Language(
        name="java",
        runtime_paths=("javac",),
        query="cd {dir} && {runtime} Main.java && java -cp {dir} Main",
        source_name="Main.java",
        build=(BatchRule("Main.java", "{runtime} -d . $(find . -name '*.java' -not -path './.*')"),),
        build_required=True,
        exec=(BatchRule("main/Main.class", "java main.Main"), BatchRule("Main.class", "java Main")),
    ),
    Language(
        name="go",
        runtime_paths=("go", "/usr/local/go/bin/go"),
        query="{runtime} run {src}",
        source_name="main.go",
        build=(BatchRule("go.mod", "{runtime} build -o main ."), BatchRule("main.go", "{runtime} build -o main main.go")),
        build_required=True,
        exec=(BatchRule("main", "./main"),),
        aliases=("golang",),
    ),
    Language(
        name="rust",
        runtime_paths=("rustc",),
        query="{runtime} -o {dir}/main {src} && {dir}/main",
        source_name="main.rs",
        build=(BatchRule("Cargo.toml", "cargo build --release"), BatchRule("main.rs", "{runtime} -O -o main main.rs")),
        build_required=True,
        exec=(BatchRule("Cargo.toml", "cargo run --release"), BatchRule("main", "./main")),
    ),
    Language(
        name="nodejs",
        runtime_paths=("node", "nodejs"),
        query="{runtime} {src}",
        source_name="main.js",
        build=(BatchRule("package.json", "npm install"),),
        exec=(BatchRule("main.js", "{runtime} main.js"), BatchRule("package.json", "npm start")),
        aliases=("node", "javascript"),
        smoke=SmokeSample(
            query=f"console.log('{SMOKE_MARKER}' + (6 * 7))",
            fail="process.exit(3)",
            slow="setTimeout(() => {}, 30000)",
            file="main.js",
            program=f"console.log('{SMOKE_MARKER}' + (6 * 7));\n",
        ),
    ),
    Language(
        name="r",
        runtime_paths=("Rscript",),
        query="{runtime} {src}",
        source_name="main.R",
        exec=(BatchRule("main.R", "{runtime} main.R"),),
        smoke=SmokeSample(
            query=f"cat(paste0('{SMOKE_MARKER}', 6 * 7), '\\n')",
            fail="quit(status = 3)",
            slow="Sys.sleep(30)",
            file="main.R",
            program=f"cat(paste0('{SMOKE_MARKER}', 6 * 7), '\\n')\n",
        ),
    ),
    Language(
        name="julia",
        runtime_paths=("julia",),
        query="{runtime} {src}",
        source_name="main.jl",
        exec=(BatchRule("main.jl", "{runtime} main.jl"),),
    ),
    Language(
        name="php",
        runtime_paths=("php",),
        query="{runtime} {src}",
        source_name="main.php",
        source_prelude="<?php\n",
        exec=(BatchRule("main.php", "{runtime} main.php"),),
    ),
    Language(
        name="lua",
        runtime_paths=("lua", "lua5.4", "lua5.3"),
        query="{runtime} {src}",
        source_name="main.lua",
        exec=(BatchRule("main.lua", "{runtime} main.lua"),),
    ),
    Language(
        name="haskell",
        runtime_paths=("runhaskell",),
        query="{runtime} {src}",
        source_name="Main.hs",
        build=(BatchRule("main.hs", "ghc --make -o main main.hs"), BatchRule("Main.hs", "ghc --make -o main Main.hs")),
        build_required=True,
        exec=(BatchRule("main", "./main"),),
    ),
    Language(
        name="octave",
        runtime_paths=("octave-cli",),
        query="{runtime} {src}",
        source_name="main.m",
        exec=(BatchRule("main.m", "{runtime} main.m"),),
    ),
)


def _index() -> dict[str, Language]:
    table: dict[str, Language] = {}
    for lang in LANGUAGES:
        for key in (lang.name, *lang.aliases):
            assert key not in table, f"duplicate runtime-type {key}"
            table[key] = lang
    return table


BY_NAME: dict[str, Language] = _index()


def lookup(runtime_type: str) -> Language | None:
    return BY_NAME.get(runtime_type.strip().lower())


def known_types() -> list[str]:
    return sorted(lang.name for lang in LANGUAGES)
