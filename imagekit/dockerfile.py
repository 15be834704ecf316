"""Read a Dockerfile as far as validation needs it (no build, no engine).

What it understands:

* parser directives at the top (``# escape=`` switches the escape character to a backtick);
* line continuations, with comment and blank lines inside a continuation dropped, as BuildKit does;
* heredocs (``RUN <<EOF`` … ``EOF``, also ``<<-EOF``, ``3<<EOF`` and quoted names) on RUN, COPY
  and ADD in shell form, and on ``ONBUILD`` of those: their bodies are skipped, so a ``#`` line
  inside one is never taken for a comment. What counts as a heredoc is what BuildKit's parser
  takes for one (see :func:`_heredoc_markers`);
* lines as BuildKit reads them: split at ``\n`` only, a trailing ``\r`` dropped. Every
  instruction keeps its span (``start_line``..``end_line``) and where its keyword ends, so
  :func:`imagekit.image_build.rewrite_for_ca` can edit the text in place from this one reading;
* build stages: ``ARG`` before the first ``FROM`` is global and only visible in a stage that
  re-declares it; ``ENV`` and labels carry over to a stage built ``FROM`` an earlier stage;
* ``LABEL k=v k2="v 2"`` and the legacy ``LABEL k v`` form, with the line each key is on;
* ``$X``, ``${X}``, ``${X:-default}``, ``${X:+alt}`` (and the colon-less forms) where the value
  is known. An ``ARG`` without a default has no known value (it comes from ``--build-arg``), and a
  name declared nowhere is not guessed to be empty: either way the text stays literal and the use
  is recorded as a :class:`Problem` (kind ``unresolved-variable``);
* ``COPY``/``ADD`` sources and destinations, to see which files land where in the image;
* suppression comments ``# bai-imagekit ignore=BAI012[,BAI013] reason``, applying to the lines of
  the next instruction (or, inside a continuation, of the instruction they are in), and
  ``# bai-imagekit ignore-file=BAI012 reason`` for the whole target.

Labels: only the last stage's labels end up on the image. A stage ``FROM`` an external image also
inherits that image's labels, which cannot be known from the Dockerfile: :attr:`Stage.labels` holds
what the Dockerfile itself sets (plus what it inherits from earlier stages of the same file) and
nothing else. Validate the built image to see the complete set.

Nothing here knows about rules: problems are plain data, turned into findings by
:mod:`imagekit.rules.dockerfile_rules`.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Dockerfile",
    "Heredoc",
    "Instruction",
    "LabelValue",
    "Placed",
    "Problem",
    "Stage",
    "Suppression",
    "Transfer",
    "files_placed_in",
    "parse",
    "parse_file",
    "source_lines",
]

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_KNOWN_DIRECTIVES = {"escape", "syntax", "check"}
_SUPPRESS = re.compile(r"^#\s*bai-imagekit\b(.*)$", re.IGNORECASE)
_SUPPRESS_BODY = re.compile(r"^\s*(ignore|ignore-file)\s*=\s*(\S+)(?:\s+(.*))?$", re.IGNORECASE)
#: one shell word that opens a heredoc: optional fd, ``<<``, optional ``-``, the (maybe quoted) name
_HEREDOC_WORD = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEREDOC_KEYWORDS = {"RUN", "COPY", "ADD"}


# ---------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Problem:
    """Something the reader could not make sense of; ``kind`` is a stable key for the rules."""

    kind: str  # label-syntax, unresolved-variable, suppression-*, heredoc-unterminated, no-from, …
    line: int | None
    message: str
    data: tuple[str, ...] = ()  # kind-specific details (e.g. the unresolved names, the rule IDs)


@dataclass(frozen=True)
class Heredoc:
    name: str
    body: str
    line: int  # first line of the body (the marker's line + 1 for the first heredoc)


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str  # the text after the keyword, continuations joined, inner comments dropped
    start_line: int
    end_line: int  # last line, heredoc bodies included
    arg_lines: tuple[int, ...] = ()  # the physical line of every character of ``args``
    heredocs: tuple[Heredoc, ...] = ()
    #: (line, column) right after the keyword's last character in :func:`source_lines`
    keyword_end: tuple[int, int] = (0, 0)

    def line_at(self, offset: int) -> int:
        if not self.arg_lines:
            return self.start_line
        return self.arg_lines[min(max(offset, 0), len(self.arg_lines) - 1)]


@dataclass(frozen=True)
class Suppression:
    rules: tuple[str, ...]  # upper-cased IDs as written
    reason: str
    line: int  # the comment's line
    lines: tuple[int, ...] | None  # lines it applies to; None for the whole target


@dataclass(frozen=True)
class LabelValue:
    key: str
    value: str
    line: int
    resolved: bool = True


@dataclass(frozen=True)
class Transfer:
    """One ``COPY`` or ``ADD``."""

    keyword: str
    sources: tuple[str, ...]
    dest: str
    line: int
    from_: str | None = None  # --from=…
    heredocs: tuple[Heredoc, ...] = ()
    resolved: bool = True


@dataclass
class Stage:
    index: int
    base: str  # the FROM image (after substitution)
    name: str | None
    line: int
    parent: "Stage | None" = None  # set when ``FROM`` names an earlier stage
    labels: dict[str, LabelValue] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)
    runs: list[Instruction] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)  # None: value unknown

    def lineage(self) -> list["Stage"]:
        """This stage and the earlier stages it is built on, oldest first."""
        chain: list[Stage] = []
        stage: Stage | None = self
        while stage is not None:
            chain.append(stage)
            stage = stage.parent
        return chain[::-1]


@dataclass
class Dockerfile:
    path: str
    escape: str
    instructions: list[Instruction]
    stages: list[Stage]
    global_args: dict[str, str | None]
    suppressions: list[Suppression]
    problems: list[Problem]

    @property
    def final_stage(self) -> Stage | None:
        return self.stages[-1] if self.stages else None

    @property
    def labels(self) -> dict[str, LabelValue]:
        """The labels the last stage sets or inherits from earlier stages (not from its base image)."""
        final = self.final_stage
        return dict(final.labels) if final else {}


# ---------------------------------------------------------------------------------------------
# lines -> instructions


def parse_file(path: Path | str, display: str | None = None) -> Dockerfile:
    """Read and parse *path*; *display* is the name used in :attr:`Dockerfile.path` (default: *path*)."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    return parse(text, display or str(path))


def source_lines(text: str) -> list[str]:
    """The physical lines of *text* as BuildKit counts them, each with its own line ending.

    Lines end at ``\n`` only (a lone ``\r`` is not a line break); line *n* of an
    :class:`Instruction` is ``source_lines(text)[n - 1]``, and ``"".join(...)`` gives *text* back.
    """
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _content(line: str) -> str:
    """A physical line without its ending (``\n``, and a ``\r`` before it, as BuildKit drops)."""
    line = line[:-1] if line.endswith("\n") else line
    return line[:-1] if line.endswith("\r") else line


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    text = text[1:] if text.startswith("\ufeff") else text
    lines = [_content(line) for line in source_lines(text)]
    escape, first = _directives(lines)
    problems: list[Problem] = []
    suppressions: list[Suppression] = []
    instructions = _instructions(lines, first, escape, problems, suppressions)
    doc = Dockerfile(path, escape, instructions, [], {}, suppressions, problems)
    _Evaluator(doc).run()
    return doc


def _directives(lines: list[str]) -> tuple[str, int]:
    """The escape character and the index of the first line after the parser directives."""
    escape = "\\"
    index = 0
    seen: set[str] = set()
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index].strip())
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES or match.group(1).lower() in seen:
            break
        key, value = match.group(1).lower(), match.group(2)
        seen.add(key)
        if key == "escape" and value in ("\\", "`"):
            escape = value
        index += 1
    return escape, index


@dataclass
class _Pending:
    rules: tuple[str, ...]
    reason: str
    line: int
    whole_file: bool


def _instructions(
    lines: list[str], index: int, escape: str, problems: list[Problem], out_suppressions: list[Suppression]
) -> list[Instruction]:
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    result: list[Instruction] = []
    pending: list[_Pending] = []
    n = len(lines)

    def comment(line: str, lineno: int, inner: list[_Pending]) -> None:
        sup = _suppression(line.strip(), lineno, problems)
        if sup is not None:
            inner.append(sup)

    while index < n:
        raw = lines[index]
        stripped = raw.strip()
        if not stripped:
            index += 1
            continue
        if stripped.startswith("#"):
            comment(raw, index + 1, pending)
            index += 1
            continue
        start = index + 1
        inside: list[_Pending] = []
        chars: list[str] = []
        char_pos: list[tuple[int, int]] = []  # (line, column) of every character of ``chars``
        while True:
            line = lines[index]
            lineno = index + 1
            match = continuation.search(line)
            piece = line[: match.start()] if match else line
            chars.extend(piece)
            char_pos.extend((lineno, col) for col in range(len(piece)))
            index += 1
            if not match:
                break
            while index < n and (not lines[index].strip() or lines[index].strip().startswith("#")):
                if lines[index].strip():
                    comment(lines[index], index + 1, inside)
                index += 1
            if index >= n:
                break
        joined = "".join(chars)
        lead = len(joined) - len(joined.lstrip())
        body = joined[lead:].rstrip()
        body_pos = char_pos[lead : lead + len(body)]
        keyword = re.split(r"[ \t]", body, maxsplit=1)[0]
        rest = body[len(keyword) :]
        skip = len(rest) - len(rest.lstrip())
        args = rest[skip:]
        arg_lines = tuple(line for line, _ in body_pos[len(keyword) + skip :])
        keyword_end = (body_pos[len(keyword) - 1][0], body_pos[len(keyword) - 1][1] + 1) if keyword else (start, 0)
        end = index
        heredocs: tuple[Heredoc, ...] = ()
        markers = _heredoc_markers(keyword.upper(), args)
        if markers:
            heredocs, index = _heredocs(markers, args, arg_lines, lines, index, start, problems)
            end = index
        instruction = Instruction(
            keyword.upper(), args, start, end, arg_lines, heredocs, keyword_end
        )
        result.append(instruction)
        applies = tuple(range(start, end + 1))
        for sup in pending + inside:
            out_suppressions.append(
                Suppression(sup.rules, sup.reason, sup.line, None if sup.whole_file else applies)
            )
        pending = []
    for sup in pending:
        if sup.whole_file:
            out_suppressions.append(Suppression(sup.rules, sup.reason, sup.line, None))
        else:
            problems.append(
                Problem("suppression-dangling", sup.line, "suppression comment is not followed by an instruction")
            )
    return result


def _suppression(comment: str, lineno: int, problems: list[Problem]) -> _Pending | None:
    match = _SUPPRESS.match(comment)
    if not match:
        return None
    body = _SUPPRESS_BODY.match(match.group(1))
    if not body:
        problems.append(
            Problem(
                "suppression-malformed",
                lineno,
                "cannot read this bai-imagekit comment; write '# bai-imagekit ignore=BAI012 reason'",
            )
        )
        return None
    ids = tuple(part.strip().upper() for part in body.group(2).split(",") if part.strip())
    reason = (body.group(3) or "").strip()
    if not reason:
        problems.append(Problem("suppression-no-reason", lineno, "suppression has no reason", ids))
    return _Pending(ids, reason, lineno, body.group(1).lower() == "ignore-file")


@dataclass(frozen=True)
class _Marker:
    name: str
    strip_tabs: bool
    offset: int  # where the word starts in ``args``


def _heredoc_markers(keyword: str, args: str) -> list[_Marker]:
    """The heredocs an instruction opens, as BuildKit's parser finds them.

    Only RUN, COPY and ADD (also as the trigger of an ``ONBUILD``) in shell form have heredocs.
    The text is split into shell words with ``\\`` as the escape character whatever the
    ``escape`` directive says, quotes and escapes kept; a word opens a heredoc when it is, as a
    whole, ``[fd]<<[-]NAME`` with a NAME that has no ``<`` and is not empty once its quotes and
    escapes are removed (``<<"END TEXT"`` is the heredoc ``END TEXT``; ``cat<<EOF``, ``'<<EOF'``,
    ``\\<<EOF``, ``$((1<<2))`` and ``<< EOF`` open none). Variables in the name are not expanded.
    """
    if keyword == "ONBUILD":
        keyword, _, args = args.replace("\t", " ").partition(" ")
        keyword, args = keyword.upper(), args.lstrip()
    if keyword not in _HEREDOC_KEYWORDS or "<<" not in args or _exec_form(args):
        return []
    markers: list[_Marker] = []
    for word, offset in _split_raw(args, "\\")[0]:
        match = _HEREDOC_WORD.match(word)
        if match is None:
            continue
        name = _unquote(match.group(3))
        if name:
            markers.append(_Marker(name, match.group(2) == "-", offset))
    return markers


def _exec_form(args: str) -> bool:
    """Whether the command (after any ``--flag`` words) is a JSON array of strings, as BuildKit reads it."""
    words, _ = _split_raw(args, "\\")
    while words and words[0][0].startswith("--"):
        words.pop(0)
    rest = args[words[0][1] :] if words else ""
    if not rest.startswith("["):
        return False
    try:
        value, _ = json.JSONDecoder().raw_decode(rest)
    except ValueError:
        return False
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _unquote(word: str) -> str:
    """Quote and ``\\`` escape removal, no expansion (a heredoc name)."""
    out: list[str] = []
    i = 0
    while i < len(word):
        ch = word[i]
        if ch == "\\" and i + 1 < len(word):
            out.append(word[i + 1])
            i += 2
        elif ch == "'":
            end = word.find("'", i + 1)
            end = len(word) if end < 0 else end
            out.append(word[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < len(word) and word[i] != '"':
                if word[i] == "\\" and i + 1 < len(word) and word[i + 1] in '"\\$`':
                    i += 1
                out.append(word[i])
                i += 1
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _heredocs(
    markers: list[_Marker],
    args: str,
    arg_lines: tuple[int, ...],
    lines: list[str],
    index: int,
    start: int,
    problems: list[Problem],
) -> tuple[tuple[Heredoc, ...], int]:
    """Read the bodies, one after another from line *index*; a body ends at a line that is exactly
    its name (after leading tabs are removed, for ``<<-``)."""
    found: list[Heredoc] = []
    for marker in markers:
        body: list[str] = []
        cursor = index
        while cursor < len(lines):
            candidate = lines[cursor].lstrip("\t") if marker.strip_tabs else lines[cursor]
            if candidate == marker.name:
                break
            body.append(candidate)
            cursor += 1
        else:
            line = arg_lines[marker.offset] if arg_lines else start
            problems.append(
                Problem(
                    "heredoc-unterminated",
                    line,
                    f"heredoc <<{marker.name} is never closed; the rest was read as instructions",
                )
            )
            break
        found.append(Heredoc(marker.name, "".join(f"{b}\n" for b in body), index + 1))
        index = cursor + 1
    return tuple(found), index


# ---------------------------------------------------------------------------------------------
# words: quoting and variable substitution


def _split_raw(text: str, escape: str) -> tuple[list[tuple[str, int]], bool]:
    """Whitespace-separated words, quotes and escapes kept; returns (words with offsets, quotes balanced)."""
    words: list[tuple[str, int]] = []
    current: list[str] = []
    start = -1
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if not quote and ch in " \t":
            if current:
                words.append(("".join(current), start))
                current = []
            i += 1
            continue
        if not current:
            start = i
        if ch == escape and quote != "'" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        current.append(ch)
        i += 1
    if current:
        words.append(("".join(current), start))
    return words, not quote


class _Scope:
    """Variables visible at one point: name -> value, or None when declared without a known value."""

    def __init__(self, values: dict[str, str | None]):
        self.values = values

    def lookup(self, name: str) -> tuple[bool, str | None]:
        """(declared, value)."""
        if name in self.values:
            return True, self.values[name]
        return False, None


class _Word:
    """Quote removal and substitution over one word (whitespace is kept, as Docker's ProcessWord does)."""

    def __init__(self, text: str, scope: _Scope, escape: str):
        self.text, self.scope, self.escape = text, scope, escape
        self.unresolved: list[str] = []

    def process(self) -> str:
        out, _ = self._until(0, "")
        return out

    def _until(self, i: int, stop: str) -> tuple[str, int]:
        out: list[str] = []
        text, esc = self.text, self.escape
        while i < len(text):
            ch = text[i]
            if stop and ch == stop:
                return "".join(out), i
            if ch == esc:
                if i + 1 < len(text):
                    out.append(text[i + 1])
                i += 2
            elif ch == "'":
                end = text.find("'", i + 1)
                end = len(text) if end < 0 else end
                out.append(text[i + 1 : end])
                i = end + 1
            elif ch == '"':
                i = self._double(i + 1, out)
            elif ch == "$":
                value, i = self._dollar(i)
                out.append(value)
            else:
                out.append(ch)
                i += 1
        return "".join(out), i

    def _double(self, i: int, out: list[str]) -> int:
        text, esc = self.text, self.escape
        while i < len(text):
            ch = text[i]
            if ch == '"':
                return i + 1
            if ch == esc and i + 1 < len(text) and text[i + 1] in ('"', "$", esc):
                out.append(text[i + 1])
                i += 2
            elif ch == "$":
                value, i = self._dollar(i)
                out.append(value)
            else:
                out.append(ch)
                i += 1
        return i

    def _dollar(self, i: int) -> tuple[str, int]:
        text = self.text
        if text.startswith("${", i):
            return self._braced(i)
        match = _NAME.match(text, i + 1)
        if not match:
            return "$", i + 1
        name = match.group(0)
        declared, value = self.scope.lookup(name)
        if value is None:
            self.unresolved.append(name)
            return "$" + name, match.end()
        return value, match.end()

    def _braced(self, i: int) -> tuple[str, int]:
        text = self.text
        close = _matching_brace(text, i + 2)
        literal = text[i : close + 1]
        inner = text[i + 2 : close]
        match = _NAME.match(inner)
        if not match:
            self.unresolved.append(inner or "?")
            return literal, close + 1
        name, op = match.group(0), inner[match.end() :]
        declared, value = self.scope.lookup(name)
        if op == "":
            if value is None:
                self.unresolved.append(name)
                return literal, close + 1
            return value, close + 1
        modifier = op[:2] if op[:2] in (":-", ":+") else op[:1]
        if modifier not in (":-", ":+", "-", "+"):
            self.unresolved.append(name)  # ${X?err}, ${X#pat}…: not evaluated
            return literal, close + 1
        if declared and value is None:
            self.unresolved.append(name)
            return literal, close + 1
        word = _Word(op[len(modifier) :], self.scope, self.escape)
        alternative = word.process()
        self.unresolved.extend(word.unresolved)
        is_set = declared
        is_nonempty = bool(value)
        use_value = is_nonempty if modifier.startswith(":") else is_set
        if modifier.endswith("-"):
            return (value or "") if use_value else alternative, close + 1
        return alternative if use_value else "", close + 1


def _matching_brace(text: str, i: int) -> int:
    depth = 0
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return len(text) - 1


def _process(text: str, scope: _Scope, escape: str) -> tuple[str, list[str]]:
    word = _Word(text, scope, escape)
    return word.process(), word.unresolved


# ---------------------------------------------------------------------------------------------
# instructions -> stages


class _Evaluator:
    def __init__(self, doc: Dockerfile):
        self.doc = doc
        self.stage: Stage | None = None
        self.args: dict[str, str | None] = {}

    def problem(self, kind: str, line: int | None, message: str, data: tuple[str, ...] = ()) -> None:
        self.doc.problems.append(Problem(kind, line, message, data))

    def scope(self) -> _Scope:
        if self.stage is None:
            return _Scope(self.doc.global_args)
        return _Scope({**self.args, **self.stage.env})

    def run(self) -> None:
        for ins in self.doc.instructions:
            handler = getattr(self, f"_on_{ins.keyword.lower()}", None)
            if handler is not None and (self.stage is not None or ins.keyword in ("FROM", "ARG")):
                handler(ins)
        if not self.doc.stages:
            self.problem("no-from", None, "the Dockerfile has no FROM instruction")

    def _pairs(self, ins: Instruction, what: str) -> list[tuple[str, int, str]] | None:
        """``k=v`` words (or the legacy ``k v`` form) as (raw key, offset in args, raw value)."""
        words, balanced = _split_raw(ins.args, self.doc.escape)
        if not balanced:
            self.problem(f"{what}-syntax", ins.start_line, f"{ins.keyword} has an unterminated quote")
            return None
        if not words:
            self.problem(f"{what}-syntax", ins.start_line, f"{ins.keyword} needs at least one key=value pair")
            return None
        first, offset = words[0]
        if "=" not in first:
            rest = ins.args[offset + len(first) :].strip()
            if not rest:
                self.problem(f"{what}-syntax", ins.line_at(offset), f"{ins.keyword} {first} has no value")
                return None
            return [(first, offset, rest)]
        pairs = []
        for raw, offset in words:
            key, eq, value = raw.partition("=")
            if not eq or not key:
                message = f"cannot find '=' in {raw!r}" if not eq else f"{ins.keyword} key is blank in {raw!r}"
                self.problem(f"{what}-syntax", ins.line_at(offset), f"{ins.keyword}: {message}; write key=value")
                return None
            pairs.append((key, offset, value))
        return pairs

    def _on_from(self, ins: Instruction) -> None:
        words = [w for w, _ in _split_raw(ins.args, self.doc.escape)[0]]
        plain = [w for w in words if not w.startswith("--")]
        base, _ = _process(plain[0], _Scope(self.doc.global_args), self.doc.escape) if plain else ("", [])
        name = plain[2].lower() if len(plain) >= 3 and plain[1].lower() == "as" else None
        parent = self._stage_named(base)
        stage = Stage(len(self.doc.stages), base, name, ins.start_line, parent)
        if parent is not None:
            stage.labels = dict(parent.labels)
            stage.env = dict(parent.env)
        self.doc.stages.append(stage)
        self.stage = stage
        self.args = {}

    def _stage_named(self, ref: str) -> Stage | None:
        for stage in self.doc.stages:
            if stage.name is not None and stage.name == ref.lower():
                return stage
        return None

    def _on_arg(self, ins: Instruction) -> None:
        target = self.doc.global_args if self.stage is None else self.args
        for raw, _ in _split_raw(ins.args, self.doc.escape)[0]:
            name, eq, default = raw.partition("=")
            if eq:
                value, missing = _process(default, self.scope(), self.doc.escape)
                target[name] = None if missing else value
            elif self.stage is not None and name in self.doc.global_args:
                target[name] = self.doc.global_args[name]
            else:
                target[name] = None

    def _on_env(self, ins: Instruction) -> None:
        assert self.stage is not None
        pairs = self._pairs(ins, "env")
        scope = self.scope()
        for raw_key, _, raw_value in pairs or []:
            key, _ = _process(raw_key, scope, self.doc.escape)
            value, missing = _process(raw_value, scope, self.doc.escape)
            self.stage.env[key] = None if missing else value

    def _on_label(self, ins: Instruction) -> None:
        assert self.stage is not None
        scope = self.scope()
        for raw_key, offset, raw_value in self._pairs(ins, "label") or []:
            key, missing_key = _process(raw_key, scope, self.doc.escape)
            value, missing_value = _process(raw_value, scope, self.doc.escape)
            line = ins.line_at(offset)
            missing = missing_key + missing_value
            if missing:
                names = tuple(dict.fromkeys(missing))
                self.problem(
                    "unresolved-variable",
                    line,
                    f"label {key}: {', '.join('$' + n for n in names)} has no known value here; kept as written",
                    names,
                )
            self.stage.labels[key] = LabelValue(key, value, line, not missing)

    def _on_copy(self, ins: Instruction) -> None:
        assert self.stage is not None
        text = ins.args
        flags: dict[str, str] = {}
        words, _ = _split_raw(text, self.doc.escape)
        while words and words[0][0].startswith("--"):
            flag, _, value = words.pop(0)[0][2:].partition("=")
            flags[flag.lower()] = value
        rest = text[words[0][1] :] if words else ""
        items: list[str] | None = None
        if rest.lstrip().startswith("["):
            try:
                loaded = json.loads(rest)
                items = [str(x) for x in loaded] if isinstance(loaded, list) else None
            except ValueError:
                items = None
        missing: list[str] = []
        if items is None:
            items = []
            for raw, _ in words:
                value, unresolved = _process(raw, self.scope(), self.doc.escape)
                missing += unresolved
                items.append(value)
        if len(items) < 2:
            return
        if missing:
            names = tuple(dict.fromkeys(missing))
            self.problem(
                "unresolved-variable",
                ins.start_line,
                f"{ins.keyword}: {', '.join('$' + n for n in names)} has no known value here; kept as written",
                names,
            )
        self.stage.transfers.append(
            Transfer(
                ins.keyword,
                tuple(items[:-1]),
                items[-1],
                ins.start_line,
                flags.get("from") or None,
                ins.heredocs,
                not missing,
            )
        )

    _on_add = _on_copy

    def _on_run(self, ins: Instruction) -> None:
        assert self.stage is not None
        self.stage.runs.append(ins)


# ---------------------------------------------------------------------------------------------
# what lands where


@dataclass(frozen=True)
class Placed:
    """One file a Dockerfile puts into an image directory."""

    name: str  # file name inside the directory
    line: int  # the COPY/ADD line
    source: Path | None = None  # the file in the build context
    text: str | None = None  # the content, for a heredoc source
    text_line: int | None = None  # where that content starts in the Dockerfile


def files_placed_in(doc: Dockerfile, image_dir: str, context: Path) -> tuple[dict[str, Placed], list[Problem]]:
    """Files the last stage (and the stages it is built on) copy directly into *image_dir*.

    The second item lists what cannot be known (a ``--from`` copy, a URL, a ``RUN`` that mentions
    the directory) and sources missing from *context*; a caller that gets an ``unknowable``
    problem should not claim to know the directory's full content. Relative destinations
    (resolved against ``WORKDIR``) are not followed.
    """
    image_dir = posixpath.normpath(image_dir)
    placed: dict[str, Placed] = {}
    problems: list[Problem] = []
    final = doc.final_stage
    if final is None:
        return placed, problems
    for stage in final.lineage():
        for run in stage.runs:
            if image_dir in run.args or any(image_dir in h.body for h in run.heredocs):
                problems.append(
                    Problem("unknowable", run.start_line, f"a RUN instruction writes to {image_dir}; its files cannot be read")
                )
        for transfer in stage.transfers:
            _place(transfer, image_dir, context, placed, problems)
    return placed, problems


def _place(t: Transfer, image_dir: str, context: Path, placed: dict[str, Placed], problems: list[Problem]) -> None:
    dest = t.dest
    if not dest.startswith("/"):
        return
    dest_norm = posixpath.normpath(dest)
    into_dir = dest.endswith("/") or len(t.sources) > 1
    if dest_norm == image_dir:
        mode, inner = "into", ""
    elif posixpath.dirname(dest_norm) == image_dir and not into_dir:
        mode, inner = "as", posixpath.basename(dest_norm)
    elif image_dir.startswith(dest_norm.rstrip("/") + "/") or dest_norm == "/":
        mode, inner = "parent", posixpath.relpath(image_dir, dest_norm)
    else:
        return
    if t.from_:
        problems.append(Problem("unknowable", t.line, f"{t.keyword} --from={t.from_} puts files in {image_dir}; they cannot be read"))
        return
    heredocs = {h.name: h for h in t.heredocs}
    for source in t.sources:
        heredoc = heredocs.get(source.lstrip("<").lstrip("-")) if source.startswith("<<") else None
        if heredoc is not None:
            if mode != "parent":
                name = inner if mode == "as" else heredoc.name
                placed[name] = Placed(name, t.line, text=heredoc.body, text_line=heredoc.line)
            continue
        if "://" in source or source.startswith("git@"):
            problems.append(Problem("unknowable", t.line, f"{t.keyword} {source}: remote sources cannot be read"))
            continue
        for path in _expand_source(context, source):
            if mode == "parent":
                sub = path / inner
                if path.is_dir() and sub.is_dir():
                    for child in sorted(sub.iterdir()):
                        if child.is_file():
                            placed[child.name] = Placed(child.name, t.line, source=child)
            elif path.is_dir():
                for child in sorted(path.iterdir()):
                    if child.is_file():
                        placed[child.name] = Placed(child.name, t.line, source=child)
            elif path.is_file():
                name = inner if mode == "as" else path.name
                placed[name] = Placed(name, t.line, source=path)
        if not _expand_source(context, source):
            problems.append(
                Problem("copy-source-missing", t.line, f"{t.keyword} source {source!r} is not in the build context", (source,))
            )


def _expand_source(context: Path, source: str) -> list[Path]:
    rel = source.lstrip("/")
    if any(c in rel for c in "*?["):
        matches = [p for p in context.glob(rel) if fnmatch.fnmatch(p.relative_to(context).as_posix(), rel)]
        return sorted(matches)
    path = context / rel if rel not in ("", ".") else context
    return [path] if path.exists() else []
