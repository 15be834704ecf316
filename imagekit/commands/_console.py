"""The interactive console of ``run --attach``: query mode from a terminal, like a notebook cell per entry.

A cell ends at an empty line (or at once when it is a single complete line);
Ctrl-C interrupts the running cell, Ctrl-D leaves. Input prompts are answered
inline; rich output is summarised (type and size).
"""

from __future__ import annotations

import json
import sys

from ..harness.client import AgentClient

PROMPT, MORE = ">>> ", "... "


def _read_cell() -> str | None:
    lines: list[str] = []
    while True:
        try:
            line = input(MORE if lines else PROMPT)
        except EOFError:
            return None if not lines else "\n".join(lines)
        if not lines and line.strip() and not line.rstrip().endswith((":", "\\", "{", "(", "[")):
            return line
        if lines and not line.strip():
            return "\n".join(lines)
        lines.append(line)


def _show(records: list[tuple[str, bytes]]) -> None:
    for kind, data in records:
        if kind == "stdout":
            sys.stdout.write(data.decode(errors="replace"))
        elif kind == "stderr":
            sys.stderr.write(data.decode(errors="replace"))
        elif kind == "media":
            try:
                media = json.loads(data)
            except ValueError:
                media = {}
            sys.stdout.write(f"[{media.get('type', 'media')}, {len(str(media.get('data', '')))} bytes]\n")
    sys.stdout.flush()


def interactive_console(client: AgentClient) -> None:
    print("query-mode console; an empty line ends a block, Ctrl-C interrupts, Ctrl-D leaves", file=sys.stderr)
    while True:
        code = _read_cell()
        if code is None:
            print(file=sys.stderr)
            return
        if not code.strip():
            continue
        client.send("code", code)
        while True:
            try:
                result = client.collect(timeout=3600)
            except KeyboardInterrupt:
                client.interrupt()
                result = client.collect(timeout=30)
            _show(result.records)
            if result.status != "waiting-input":
                if result.exit_code not in (0, None):
                    print(f"[exit code {result.exit_code}]", file=sys.stderr)
                break
            try:
                answer = input()
            except (EOFError, KeyboardInterrupt):
                client.interrupt()
                _show(client.collect(timeout=30).records)
                break
            client.send("input", answer)
