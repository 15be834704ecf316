"""The Dockerfile reader: continuations, escape directive, LABEL forms, quoting, substitution, suppressions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from imagekit.dockerfile import files_placed_in, parse
from imagekit.rules.dockerfile_rules import findings_for


def df(text: str):
    return parse(textwrap.dedent(text).lstrip("\n"), "Dockerfile")


def labels(text: str) -> dict[str, tuple[str, int]]:
    return {k: (v.value, v.line) for k, v in df(text).labels.items()}


def kinds(doc) -> list[tuple[str, int | None]]:
    return [(p.kind, p.line) for p in doc.problems]


# ------------------------------------------------------------------ lines and instructions


def test_continuations_join_lines_and_record_each_keys_line():
    doc = df(
        """
        FROM base
        LABEL a=1 \\
              b=2 \\

              # a comment inside the continuation
              c=3
        RUN true
        """
    )
    label = doc.instructions[1]
    assert (label.keyword, label.start_line, label.end_line) == ("LABEL", 2, 6)
    assert labels_of(doc) == {"a": ("1", 2), "b": ("2", 3), "c": ("3", 6)}
    assert doc.instructions[2].start_line == 7


def labels_of(doc):
    return {k: (v.value, v.line) for k, v in doc.labels.items()}


def test_escape_directive_switches_to_backtick():
    doc = df(
        """
        # escape=`
        FROM base
        LABEL path=C:\\dir `
              other="a`"b"
        """
    )
    assert doc.escape == "`"
    assert labels_of(doc) == {"path": ("C:\\dir", 3), "other": ('a"b', 4)}


def test_escape_directive_only_at_the_top():
    doc = df(
        """
        FROM base
        # escape=`
        LABEL a=x`y
        """
    )
    assert doc.escape == "\\"
    assert labels_of(doc) == {"a": ("x`y", 3)}


def test_backslash_whitespace_at_line_end_still_continues():
    doc = df("FROM base\nLABEL a=1 \\   \n  b=2\n")
    assert labels_of(doc) == {"a": ("1", 2), "b": ("2", 3)}


def test_heredoc_bodies_are_skipped():
    doc = df(
        """
        FROM base
        RUN <<EOF
        # bai-imagekit ignore=BAI001 this is shell, not a Dockerfile comment
        LABEL not=a-label
        EOF
        RUN <<-"END" cat
        \tLABEL still=not
        \tEND
        LABEL real=yes
        """
    )
    assert [i.keyword for i in doc.instructions] == ["FROM", "RUN", "RUN", "LABEL"]
    assert (doc.instructions[1].start_line, doc.instructions[1].end_line) == (2, 5)
    assert doc.instructions[1].heredocs[0].body.startswith("# bai-imagekit")
    assert labels_of(doc) == {"real": ("yes", 9)}
    assert doc.suppressions == []


# (Dockerfile, [(keyword, start_line, end_line, heredoc names)]) as BuildKit's own parser
# (frontend/dockerfile/parser, v0.12.5, run through the PyPI ``dockerfile`` wrapper) reads them.
BUILDKIT_READS = {
    "heredoc needs a whole word": ("FROM b\nRUN cat<<EOF && echo $((1<<2))\nRUN x\n", [("FROM", 1, 1, ()), ("RUN", 2, 2, ()), ("RUN", 3, 3, ())]),
    "space after <<": ("FROM b\nRUN cat << EOF\nRUN x\n", [("FROM", 1, 1, ()), ("RUN", 2, 2, ()), ("RUN", 3, 3, ())]),
    "quoted or escaped <<": ("FROM b\nRUN echo '<<A' \\<<B x\"<<C\"\nRUN x\n", [("FROM", 1, 1, ()), ("RUN", 2, 2, ()), ("RUN", 3, 3, ())]),
    "terminator is exact": ("FROM b\nRUN <<EOF\n  EOF\nEOF  \nEOF\nRUN after\n", [("FROM", 1, 1, ()), ("RUN", 2, 5, ("EOF",)), ("RUN", 6, 6, ())]),
    "<<- strips tabs only": ("FROM b\nRUN <<-EOF\n  EOF\n\tEOF\nRUN after\n", [("FROM", 1, 1, ()), ("RUN", 2, 4, ("EOF",)), ("RUN", 5, 5, ())]),
    "dotted name": ("FROM b\nCOPY <<EOF.txt /x\nEOF\nEOF.txt\nRUN after\n", [("FROM", 1, 1, ()), ("COPY", 2, 4, ("EOF.txt",)), ("RUN", 5, 5, ())]),
    "quoted names": ("FROM b\nRUN <<\"E O\" <<E\"F\"G <<1\nx\nE O\nEFG\n1\nRUN after\n", [("FROM", 1, 1, ()), ("RUN", 2, 6, ("E O", "EFG", "1")), ("RUN", 7, 7, ())]),
    "fd and redirect": ("FROM b\nRUN 3<<EOF cat >/x /dev/fd/3\nx\nEOF\nRUN after\n", [("FROM", 1, 1, ()), ("RUN", 2, 4, ("EOF",)), ("RUN", 5, 5, ())]),
    "exec form": ("FROM b\nRUN --network=none [\"sh\", \"<<EOF\"]\nRUN x\n", [("FROM", 1, 1, ()), ("RUN", 2, 2, ()), ("RUN", 3, 3, ())]),
    "not on LABEL": ("FROM b\nLABEL a=<<EOF\nRUN x\n", [("FROM", 1, 1, ()), ("LABEL", 2, 2, ()), ("RUN", 3, 3, ())]),
    # (the wrapper leaves an ONBUILD trigger's heredocs out of its result; BuildKit reads them)
    "ONBUILD trigger": ("FROM b\nonbuild run <<EOF\nRUN x\nEOF\nRUN after\n", [("FROM", 1, 1, ()), ("ONBUILD", 2, 4, ("EOF",)), ("RUN", 5, 5, ())]),
    "heredoc after a continuation": ("FROM b\nRUN \\\n# c <<X\n  <<EOF\nRUN x\nEOF\nRUN after\n", [("FROM", 1, 1, ()), ("RUN", 2, 6, ("EOF",)), ("RUN", 7, 7, ())]),
    "backslash is the heredoc escape": ("# escape=`\nFROM b\nRUN <<E\\OF\nx\nEOF\nRUN after\n", [("FROM", 2, 2, ()), ("RUN", 3, 5, ("EOF",)), ("RUN", 6, 6, ())]),
    "backtick continuation": ("# escape=`\nFROM b\nRUN echo a `\n  <<EOF\nRUN x\nEOF\nRUN echo \\\nRUN after\n", [("FROM", 2, 2, ()), ("RUN", 3, 6, ("EOF",)), ("RUN", 7, 7, ()), ("RUN", 8, 8, ())]),
    "CRLF, and a lone CR is no line break": ("FROM b\r\nRUN <<EOF\r\nx\r\nEOF\r\nRUN a\rb\n", [("FROM", 1, 1, ()), ("RUN", 2, 4, ("EOF",)), ("RUN", 5, 5, ())]),
}


@pytest.mark.parametrize("case", sorted(BUILDKIT_READS))
def test_instruction_spans_and_heredocs_as_buildkit_reads_them(case):
    text, expected = BUILDKIT_READS[case]
    doc = parse(text)
    assert [(i.keyword, i.start_line, i.end_line, tuple(h.name for h in i.heredocs)) for i in doc.instructions] == expected
    assert not [p for p in doc.problems if p.kind == "heredoc-unterminated"]


def test_keyword_end_points_into_the_source_lines():
    from imagekit.dockerfile import source_lines

    text = "FROM b\n  run true\nRU\\\nN x\n"
    lines = source_lines(text)
    assert "".join(lines) == text
    ends = [i.keyword_end for i in parse(text).instructions]
    assert ends == [(1, 4), (2, 5), (4, 1)]
    assert [lines[line - 1][:col] for line, col in ends] == ["FROM", "  run", "N"]


def test_unterminated_heredoc_is_reported_and_reading_goes_on():
    doc = df(
        """
        FROM base
        RUN <<EOF
        LABEL a=1
        """
    )
    assert ("heredoc-unterminated", 2) in kinds(doc)
    assert labels_of(doc) == {"a": ("1", 3)}


def test_no_from_is_a_problem():
    assert ("no-from", None) in kinds(df("LABEL a=1\n"))


# ------------------------------------------------------------------ LABEL forms and quoting


def test_key_value_form_with_quotes():
    got = labels(
        """
        FROM base
        LABEL a=1 b="two words" c='single $X' "d.e"="quoted key" f=esc\\ aped g=""
        """
    )
    assert got == {
        "a": ("1", 2),
        "b": ("two words", 2),
        "c": ("single $X", 2),
        "d.e": ("quoted key", 2),
        "f": ("esc aped", 2),
        "g": ("", 2),
    }


def test_legacy_label_form_takes_the_rest_of_the_line():
    assert labels("FROM base\nLABEL ai.backend.features batch  uid-match\n") == {
        "ai.backend.features": ("batch  uid-match", 2)
    }
    assert labels('FROM base\nLABEL desc "quoted value"\n') == {"desc": ("quoted value", 2)}


def test_later_labels_override_earlier_ones():
    assert labels("FROM base\nLABEL a=1\nLABEL a=2\n") == {"a": ("2", 3)}


@pytest.mark.parametrize(
    "line",
    ["LABEL a=1 b", "LABEL =1", 'LABEL a="unterminated', "LABEL", "LABEL lonely"],
)
def test_unparseable_labels(line):
    doc = df(f"FROM base\n{line}\n")
    assert ("label-syntax", 2) in kinds(doc)
    assert [f.rule for f in findings_for(doc)] == ["BAI501"]


# ------------------------------------------------------------------ substitution and stages


def test_substitution_forms():
    got = labels(
        """
        ARG unused=1
        FROM base
        ARG V=3.11
        ARG EMPTY=
        ENV HOME=/home/work
        LABEL a=$V b=${V} c=${NONE:-dflt} d=${V:-dflt} e=${V:+alt} f=${NONE:+alt} \\
              g=${EMPTY:-fallback} h=${EMPTY-kept} i="$HOME/x" j='$HOME' k=\\$V l=${HOME}${V}
        """
    )
    assert {k: v for k, (v, _) in got.items()} == {
        "a": "3.11",
        "b": "3.11",
        "c": "dflt",
        "d": "3.11",
        "e": "alt",
        "f": "",
        "g": "fallback",
        "h": "",
        "i": "/home/work/x",
        "j": "$HOME",
        "k": "$V",
        "l": "/home/work3.11",
    }


def test_unresolved_variables_stay_literal_and_are_reported():
    doc = df(
        """
        FROM base
        ARG NODEFAULT
        LABEL a=$NODEFAULT \\
              b=${UNDECLARED} c=${NODEFAULT:-x} d=ok
        """
    )
    assert labels_of(doc) == {"a": ("$NODEFAULT", 3), "b": ("${UNDECLARED}", 4), "c": ("${NODEFAULT:-x}", 4), "d": ("ok", 4)}
    assert not doc.labels["a"].resolved and doc.labels["d"].resolved
    found = findings_for(doc)
    assert [(f.rule, f.location.line, f.severity.value) for f in found] == [
        ("BAI502", 3, "info"),
        ("BAI502", 4, "info"),
        ("BAI502", 4, "info"),
    ]
    assert "$UNDECLARED" in found[1].message


def test_global_args_need_redeclaring_in_a_stage():
    doc = df(
        """
        ARG VERSION=1.2
        FROM base:${VERSION}
        LABEL before=${VERSION:-unset}
        ARG VERSION
        LABEL after=${VERSION}
        """
    )
    assert doc.stages[0].base == "base:1.2"
    assert labels_of(doc) == {"before": ("unset", 3), "after": ("1.2", 5)}


def test_env_wins_over_arg_and_is_evaluated_before_the_instruction():
    got = labels(
        """
        FROM base
        ENV A=env
        ARG A=arg
        ENV B=1 C=$B
        LABEL a=$A c=$C
        """
    )
    assert got["a"] == ("env", 5)
    assert got["c"] == ("$C", 5)  # B was not set yet when C was evaluated, so C is not known


def test_only_the_last_stage_counts_but_named_parents_pass_on_labels_and_env():
    doc = df(
        """
        FROM base AS builder
        ENV PY=/usr/bin/python3
        LABEL from.builder=1 stage=builder
        FROM other AS unrelated
        LABEL from.unrelated=1
        FROM builder
        LABEL stage=final runtime=$PY
        """
    )
    assert labels_of(doc) == {
        "from.builder": ("1", 3),
        "stage": ("final", 7),
        "runtime": ("/usr/bin/python3", 7),
    }
    assert doc.final_stage.parent is doc.stages[0]


def test_args_do_not_carry_over_between_stages():
    doc = df(
        """
        FROM base AS one
        ARG X=1
        FROM one
        LABEL x=$X
        """
    )
    assert labels_of(doc) == {"x": ("$X", 4)}


# ------------------------------------------------------------------ suppressions


def test_suppression_applies_to_the_next_instructions_lines():
    doc = df(
        """
        FROM base
        # bai-imagekit ignore=BAI101,bai204 the label is rewritten at deploy time
        LABEL ai.backend.service-ports="a:http:8080" \\
              other=1
        LABEL unrelated=1
        """
    )
    (sup,) = doc.suppressions
    assert sup.rules == ("BAI101", "BAI204")
    assert sup.reason == "the label is rewritten at deploy time"
    assert (sup.line, sup.lines) == (2, (3, 4))
    assert findings_for(doc) == []


def test_suppression_inside_a_continuation_applies_to_that_instruction():
    doc = df(
        """
        FROM base
        LABEL a=1 \\
          # bai-imagekit ignore=BAI002 set by the base image
          b=2
        """
    )
    assert [(s.rules, s.lines) for s in doc.suppressions] == [(("BAI002",), (2, 3, 4))]


def test_ignore_file_applies_to_the_whole_target():
    doc = df("# bai-imagekit ignore-file=BAI002 legacy image\nFROM base\n")
    assert [(s.rules, s.lines) for s in doc.suppressions] == [(("BAI002",), None)]


def test_suppression_problems():
    doc = df(
        """
        FROM base
        # bai-imagekit ignore=BAI001
        LABEL a=1
        # bai-imagekit ignore=BAI998 typo in the id
        LABEL b=1
        # bai-imagekit please ignore everything
        LABEL c=1
        # bai-imagekit ignore=BAI001 nothing follows
        """
    )
    got = sorted((f.rule, f.location.line, f.severity.value) for f in findings_for(doc))
    assert got == [
        ("BAI503", 2, "warning"),
        ("BAI504", 4, "warning"),
        ("BAI505", 6, "warning"),
        ("BAI505", 8, "warning"),
    ]


# ------------------------------------------------------------------ COPY / ADD


def test_files_placed_in_a_directory(tmp_path: Path):
    (tmp_path / "service-defs").mkdir()
    (tmp_path / "service-defs" / "jupyter.json").write_text("{}")
    (tmp_path / "service-defs" / "notes.txt").write_text("")
    (tmp_path / "extra.json").write_text("{}")
    (tmp_path / "etc" / "backend.ai" / "service-defs").mkdir(parents=True)
    (tmp_path / "etc" / "backend.ai" / "service-defs" / "deep.json").write_text("{}")
    doc = df(
        """
        FROM base
        ARG D=/etc/backend.ai/service-defs
        COPY service-defs/ ${D}/
        COPY --chown=1000:1000 ["extra.json", "/etc/backend.ai/service-defs/renamed.json"]
        COPY etc /etc
        COPY <<EOF /etc/backend.ai/service-defs/inline.json
        {"command": ["true"]}
        EOF
        ADD missing/ /etc/backend.ai/service-defs/
        COPY other.json /opt/elsewhere/
        """
    )
    placed, problems = files_placed_in(doc, "/etc/backend.ai/service-defs", tmp_path)
    assert sorted(placed) == ["deep.json", "inline.json", "jupyter.json", "notes.txt", "renamed.json"]
    assert placed["renamed.json"].source == tmp_path / "extra.json"
    assert placed["inline.json"].text == '{"command": ["true"]}\n' and placed["inline.json"].text_line == 7
    assert [(p.kind, p.line) for p in problems] == [("copy-source-missing", 9)]


def test_files_from_other_stages_or_run_are_unknowable(tmp_path: Path):
    doc = df(
        """
        FROM base AS defs
        FROM base
        COPY --from=defs /out/ /etc/backend.ai/service-defs/
        RUN echo '{}' > /etc/backend.ai/service-defs/x.json
        """
    )
    _, problems = files_placed_in(doc, "/etc/backend.ai/service-defs", tmp_path)
    assert sorted((p.kind, p.line) for p in problems) == [("unknowable", 3), ("unknowable", 4)]
