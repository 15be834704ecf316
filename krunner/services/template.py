"""The safe template language of service definitions.

One templater for every field (command, arguments, env, prestart actions):

* ``{name}``, ``{name[0]}``, ``{name[key]}`` / ``{name["key"]}`` and the same
  inside ``${{ … }}`` are expressions: a variable, optionally indexed by
  integers (lists) and keys (mappings).  Nothing else — no attribute access,
  no ``!r`` conversions, no format specs, no calls;
* ``{{`` and ``}}`` are literal braces;
* shell parameter expansion (``$VAR``, ``${VAR}``, ``${A:-${B}}``) passes
  through untouched.

Templates are parsed when a definition is loaded, so every mistake is found
before the service is ever started.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"\[\s*(?:(-?\d+)|\"([^\"\]]*)\"|'([^'\]]*)'|([A-Za-z0-9_.\-]+))\s*\]")


class TemplateError(ValueError):
    """A template that is not allowed, with the offending expression."""


@dataclass(frozen=True)
class Expr:
    source: str
    name: str
    path: tuple[Union[int, str], ...]


Part = Union[str, Expr]


def parse_expression(source: str) -> Expr:
    text = source.strip()
    match = _NAME.match(text)
    if not match:
        raise TemplateError(f"{{{source}}}: an expression must start with a variable name")
    name, pos = match.group(0), match.end()
    path: list[Union[int, str]] = []
    while pos < len(text):
        index = _INDEX.match(text, pos)
        if not index:
            rest = text[pos:]
            if rest.startswith("."):
                why = "attribute access is not allowed"
            elif rest.startswith("!"):
                why = "conversions (!r, !s) are not allowed"
            elif rest.startswith(":"):
                why = "format specs are not allowed"
            elif rest.startswith("("):
                why = "calls are not allowed"
            else:
                why = f"unexpected {rest[:10]!r}"
            raise TemplateError(f"{{{source}}}: {why}")
        number, dq, sq, bare = index.groups()
        path.append(int(number) if number is not None else (dq if dq is not None else sq if sq is not None else bare))
        pos = index.end()
    return Expr(source=source, name=name, path=tuple(path))


def parse(template: str) -> list[Part]:
    """Split a template into literal text and expressions (raises TemplateError)."""
    parts: list[Part] = []
    text: list[str] = []
    i, n = 0, len(template)

    def flush() -> None:
        if text:
            parts.append("".join(text))
            text.clear()

    while i < n:
        if template.startswith("${{", i):
            end = template.find("}}", i + 3)
            if end < 0:
                raise TemplateError(f"unclosed '${{{{' in {template!r}")
            flush()
            parts.append(parse_expression(template[i + 3 : end]))
            i = end + 2
        elif template.startswith("${", i):
            depth, j = 0, i + 1
            while j < n:
                if template[j] == "{":
                    depth += 1
                elif template[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise TemplateError(f"unclosed shell expansion '${{' in {template!r}")
            text.append(template[i : j + 1])
            i = j + 1
        elif template.startswith("{{", i):
            text.append("{")
            i += 2
        elif template.startswith("}}", i):
            text.append("}")
            i += 2
        elif template[i] == "{":
            end = template.find("}", i + 1)
            if end < 0:
                raise TemplateError(f"unclosed '{{' in {template!r} (write '{{{{' for a literal brace)")
            flush()
            parts.append(parse_expression(template[i + 1 : end]))
            i = end + 1
        elif template[i] == "}":
            raise TemplateError(f"single '}}' in {template!r} (write '}}}}' for a literal brace)")
        else:
            text.append(template[i])
            i += 1
    flush()
    return parts


def check(template: str, known: Iterable[str]) -> None:
    """Parse ``template`` and make sure it only names ``known`` variables."""
    known_set = set(known)
    for part in parse(template):
        if isinstance(part, Expr) and part.name not in known_set:
            names = ", ".join(sorted(known_set)) or "none"
            raise TemplateError(f"{{{part.source}}}: unknown variable {part.name!r} (available: {names})")


def _lookup(expr: Expr, variables: Mapping[str, Any]) -> Any:
    if expr.name not in variables:
        raise TemplateError(f"{{{expr.source}}}: unknown variable {expr.name!r}")
    value = variables[expr.name]
    for step in expr.path:
        try:
            if isinstance(step, int):
                if not isinstance(value, (list, tuple)):
                    raise TypeError
                value = value[step]
            else:
                if not isinstance(value, Mapping):
                    raise TypeError
                value = value[step]
        except (IndexError, KeyError, TypeError):
            raise TemplateError(f"{{{expr.source}}}: no item {step!r} in {expr.name}") from None
    return value


def render(template: str, variables: Mapping[str, Any]) -> str:
    out: list[str] = []
    for part in parse(template):
        if isinstance(part, str):
            out.append(part)
        else:
            value = _lookup(part, variables)
            out.append(value if isinstance(value, str) else str(value))
    return "".join(out)
