"""BAI2xx: service-definition files (``/etc/backend.ai/service-defs/<name>.json``) and the label.

Every file is loaded with krunner's own loader
(:func:`krunner.services.service_def.load_definition`), so a file passes here exactly
when the runner in the container will accept it.  The checks only run when the
target can tell which def files it has (``KernelInputs.service_defs`` is not None).
"""

from __future__ import annotations

import difflib
import re
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

from krunner.contract import RUNTIME_TYPE_LABEL
from krunner.services import template
from krunner.services.service_def import (
    DefinitionError,
    ServiceDefinition,
    load_definition,
)

from ..findings import Finding, Location
from ..kernel_inputs import KernelInputs, ServiceDefSource
from ..runner_target import (
    AGENT_START_SERVICE_WAIT_SECONDS,
    STOCK_ACTION_ARGS,
    STOCK_SERVICE_DEF_KEYS,
)
from .catalogue import rule
from .service_ports import (
    INTRINSIC_NAMES,
    LABEL,
    SPAWNED_PROTOCOLS,
    PortEntry,
    declared,
)

SUBJECT = "service-defs"
URL_VARIABLES = ("protocol", "host", "port")
# services upstream's python runner could start without a def file (krunner has no such fallback)
UPSTREAM_PYTHON_FALLBACKS = ("jupyter", "jupyterlab", "ipython", "digits", "tensorboard", "spectravis", "sftp")

MISSING = rule(
    "BAI201",
    "error",
    "declared service has no service-def file",
    "Add `/etc/backend.ai/service-defs/<name>.json` for the service (see service-defs/ for ready-made ones), "
    "or declare the port as `preopen` if something else starts it.",
    description="When a user opens an http/tcp/vnc/rdp service, the runner looks up the def file named after "
    "the service. Without one the app fails to open with \"unsupported service\"; nothing checks this earlier. "
    "Only `sshd` and `ttyd` are built in. Upstream's python runner had fallbacks for jupyter, tensorboard and a "
    "few others; krunner does not.",
    subject=SUBJECT,
)
INVALID = rule(
    "BAI202",
    "error",
    "service-def file does not load",
    "Fix the key named in the message; `service-defs/schema.json` lists every key and type.",
    description="Every `*.json` in the service-defs directory is loaded with krunner's own loader: the file "
    "must be UTF-8 JSON with an object, only known keys, a `command` (unless `noop`), valid prestart actions "
    "and templates that name only known variables. A broken file makes its service fail to start.",
    subject=SUBJECT,
)
DEAD_DEF = rule(
    "BAI203",
    "warning",
    "service-def file is never executed",
    "Delete the file, or change the service's protocol to http/tcp if the runner should start it.",
    description="`preopen` services are started by the image (e.g. from bootstrap.sh) and `pty` entries are "
    "dropped, so the runner never executes a def file for them.",
    subject=SUBJECT,
)
UNDECLARED = rule(
    "BAI204",
    "warning",
    "service-def file has no declared service port",
    "Add `<name>:http:<port>` to `ai.backend.service-ports`, rename the file to match the label, or delete it.",
    description="A def file is reachable only through a service-ports entry with the same name. An orphan "
    "file is usually a name mismatch (`nni.json` for the `nniboard` entry). A file name containing a dot "
    "can never match, because service names cannot contain dots.",
    subject=SUBJECT,
)
URL_TEMPLATE = rule(
    "BAI205",
    "error",
    "url_template uses an unknown variable",
    "Use only `{protocol}`, `{host}` and `{port}` in url_template; write `{{` and `}}` for literal braces.",
    description="Clients (the CLI, the app proxy) fill url_template with Python's str.format and exactly the "
    "variables protocol, host and port. Anything else, or an unbalanced brace, breaks the app's link.",
    subject=SUBJECT,
)
PORT_INDEX = rule(
    "BAI206",
    "error",
    "template uses a port the service does not declare",
    "Use `{ports[0]}` for a single-port service, or declare more ports (`name:tcp:[p,q]`).",
    description="`{ports[i]}` is filled from the service's entry in service-ports. An index beyond the "
    "declared ports fails every start of the service (\"no item i in ports\").",
    subject=SUBJECT,
)
PORT_UNUSED = rule(
    "BAI207",
    "warning",
    "service command never uses its port",
    "Pass `{ports[0]}` to the app (e.g. `--port {ports[0]}`) so it listens where the label says.",
    description="The runner waits for the declared port to accept connections. A command that neither "
    "uses `{ports[...]}` nor mentions the port number relies on the app's default port, and the start "
    "times out when that differs from the label.",
    subject=SUBJECT,
)

STOCK_UNKNOWN_KEY = rule(
    "BAI208",
    "error",
    "service-def key the stock runner does not know",
    "Remove the key (krunner-only keys are marked in docs/service-defs.md), or deploy krunner to the agents and "
    "validate with `--runner krunner`.",
    description="The stock runner builds every definition strictly at start-up: an unknown top-level key "
    "(e.g. `launch_timeout`) makes the runner fail to start, which takes every service and the kernel with it. "
    "An unknown argument of a prestart action (`suffix` on write_tempfile, `timeout`/`check` on run_command, "
    "`body` on log) fails that service's start. krunner accepts these keys.",
    subject=SUBJECT, runner_dependent=True, matches="Backend.AI 26.x (backend.ai-kernel 26.9.6)",
)
LAUNCH_TIMEOUT = rule(
    "BAI209",
    "error",
    "launch_timeout is longer than the agent waits",
    f"Keep `launch_timeout` at or below {AGENT_START_SERVICE_WAIT_SECONDS:g} s, or make the app start faster.",
    description=f"The agent waits {AGENT_START_SERVICE_WAIT_SECONDS:g} s for a start-service reply (upstream "
    "#13684; it was 10 s before, and the wait is becoming configurable, #13683, #13685). A service still "
    "starting after that is reported to the user as failed while the runner keeps waiting.",
    subject=SUBJECT, runner_dependent=True, matches="Backend.AI 26.x (the 35 s wait of #13684)",
)

EXAMPLES: dict[str, str] = {
    "BAI201": "`vscode:http:8180` with no `service-defs/vscode.json` → copy `service-defs/code-server.json` to `vscode.json`",
    "BAI202": "`{\"comand\": [\"x\"]}` → `{\"command\": [\"x\"]}`",
    "BAI203": "`mlflow-ui:preopen:5000` plus `mlflow-ui.json` → delete the file or use `mlflow-ui:http:5000`",
    "BAI204": "`nni.json` for `nniboard:http:8080` → rename to `nniboard.json`",
    "BAI205": "`\"url_template\": \"{scheme}://{host}:{port}/\"` → `\"{protocol}://{host}:{port}/\"`",
    "BAI206": "`--grpc-port {ports[1]}` on `app:http:8000` → `app:tcp:[8000,8001]`",
    "BAI207": "`[\"mlflow\", \"ui\"]` → `[\"mlflow\", \"ui\", \"--port\", \"{ports[0]}\"]`",
    "BAI208": "`\"launch_timeout\": 20` (stock target) → remove it",
    "BAI209": "`\"launch_timeout\": 120` → `30`",
}


@dataclass(frozen=True)
class _Loaded:
    source: ServiceDefSource
    definition: ServiceDefinition


def check(inputs: KernelInputs) -> list[Finding]:
    defs = inputs.service_defs
    if defs is None:
        return []
    out: list[Finding] = []
    loaded = _load_all(defs, out)
    ports = declared(inputs)
    out += _label_to_files(inputs, ports.active(), defs)
    # the entry a start of each name uses: the first one the runner would spawn
    spawned = {e.name: e for e in reversed(ports.active()) if e.protocol in SPAWNED_PROTOCOLS}
    others = {e.name: e for e in reversed(ports.entries)}
    for name, source in sorted(defs.items()):
        if name in spawned:
            continue
        entry = others.get(name)
        if entry is None:
            out.append(_undeclared(name, source))
        elif entry.protocol in ("preopen", "pty"):
            out.append(DEAD_DEF.finding(
                f"{name}.json is never executed: service {name!r} is declared as {entry.protocol}",
                location=source.location,
            ))
    for name, item in sorted(loaded.items()):
        out += _stock_keys(inputs, item)
        out += _launch_timeout(inputs, item)
        out += _url_template(item)
        if name in spawned:
            out += _port_usage(item, spawned[name])
    return out


# ------------------------------------------------------------------------------- loading


def _load_all(defs: dict[str, ServiceDefSource], out: list[Finding]) -> dict[str, _Loaded]:
    loaded: dict[str, _Loaded] = {}
    with tempfile.TemporaryDirectory(prefix="imagekit-defs-") as tmp:
        scratch = Path(tmp) / "service-def.json"
        for name, source in sorted(defs.items()):
            if source.text is None:
                why = source.error or "unreadable"
                out.append(INVALID.finding(f"{name}.json cannot be read: {why}", location=source.location))
                continue
            scratch.write_text(source.text, encoding="utf-8")
            try:
                loaded[name] = _Loaded(source, load_definition(scratch))
            except DefinitionError as exc:
                line = _reason_line(source.text, exc.reason)
                out.append(INVALID.finding(f"{name}.json: {exc.reason}", location=_at(source, line)))
    return loaded


def _stock_keys(inputs: KernelInputs, item: _Loaded) -> list[Finding]:
    """Keys that upstream's strict ServiceDefinition or its prestart actions do not accept."""
    import json

    text = item.source.text or ""
    raw = json.loads(text)
    name = item.source.name
    out: list[Finding] = []
    for key in sorted(set(raw) - STOCK_SERVICE_DEF_KEYS):
        out.append(STOCK_UNKNOWN_KEY.for_runner(
            inputs.target_runner, f"{name}.json: key {key!r} is unknown to the stock runner, which then fails to start",
            location=_at(item.source, key_line(text, [key])),
        ))
    for index, action in enumerate(raw.get("prestart", raw.get("prestart_actions", [])) or []):
        known = STOCK_ACTION_ARGS.get(action.get("action"))
        args = action.get("args") or {}
        if known is None or not isinstance(args, dict):
            continue
        for arg in sorted(set(args) - known):
            out.append(STOCK_UNKNOWN_KEY.for_runner(
                inputs.target_runner, f"{name}.json: prestart[{index}] {action['action']} has argument {arg!r}, which the "
                "stock runner rejects when it starts the service",
                location=_at(item.source, key_line(text, ["args", arg])),
            ))
    return out


def _launch_timeout(inputs: KernelInputs, item: _Loaded) -> list[Finding]:
    timeout = item.definition.launch_timeout
    if timeout <= AGENT_START_SERVICE_WAIT_SECONDS:
        return []
    text = item.source.text or ""
    return [LAUNCH_TIMEOUT.for_runner(
        inputs.target_runner, f"{item.source.name}.json: launch_timeout {timeout:g} s is longer than the agent's "
        f"{AGENT_START_SERVICE_WAIT_SECONDS:g} s wait for the start-service reply",
        location=_at(item.source, key_line(text, ["launch_timeout"])),
    )]


def _at(source: ServiceDefSource, line: int | None) -> Location:
    if line is None:
        return source.location
    return Location(file=source.location.file, line=(source.location.line or 1) + line - 1)


def _reason_line(text: str, reason: str) -> int | None:
    """The line the loader's reason points at: a JSON error's line, or the line of the key it names."""
    first = reason.split("; ")[0]
    m = re.match(r"line (\d+):", first)
    if m:
        return int(m.group(1))
    m = re.match(r"([^\s:]+): ", first)
    if not m:
        return None
    path = [p for p in re.sub(r"\[\d+\]", "", m.group(1)).split(".") if p and not p.isdigit()]
    return key_line(text, path)


def key_line(text: str, path: list[str]) -> int | None:
    """1-based line of the last key of *path* found in order in the JSON *text* (None if none is found)."""
    pos, found = 0, None
    for key in path:
        m = re.compile(r'"' + re.escape(key) + r'"\s*:').search(text, pos)
        if m is None:
            continue  # e.g. a union tag pydantic puts in the location; keep looking for the next key
        pos = found = m.start()
    return None if found is None else text.count("\n", 0, found) + 1


# ------------------------------------------------------------------------------- label <-> files


def _label_to_files(inputs: KernelInputs, entries: list[PortEntry], defs: dict[str, ServiceDefSource]) -> list[Finding]:
    out: list[Finding] = []
    python = inputs.labels.get(RUNTIME_TYPE_LABEL, "").strip().lower() == "python"
    where = inputs.location_of(LABEL)
    for name in dict.fromkeys(e.name for e in entries if e.protocol in SPAWNED_PROTOCOLS):
        if name in defs or name in INTRINSIC_NAMES:
            continue
        note = ""
        close = difflib.get_close_matches(name, list(defs), n=1, cutoff=0.5)
        if close:
            note = f" (there is {close[0]}.json: rename it?)"
        elif python and name in UPSTREAM_PYTHON_FALLBACKS:
            note = " (upstream's python runner had a built-in fallback for it; krunner has none)"
        out.append(MISSING.finding(f"service {name!r} has no service-defs/{name}.json{note}", location=where, label=LABEL))
    return out


def _undeclared(name: str, source: ServiceDefSource) -> Finding:
    if "." in name:
        why = f"{name}.json can never be used: service names cannot contain '.'"
    else:
        why = f"{name}.json has no {name!r} entry in ai.backend.service-ports, so it can never be started"
    return UNDECLARED.finding(why, location=source.location)


# ------------------------------------------------------------------------------- templates


def _url_template(item: _Loaded) -> list[Finding]:
    url = item.definition.url_template
    if not url:
        return []
    where = _at(item.source, key_line(item.source.text or "", ["url_template"]))
    name = item.source.name
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(url) if f is not None]
    except ValueError as exc:
        return [URL_TEMPLATE.finding(f"{name}.json: url_template {url!r} is malformed: {exc}", location=where)]
    bad = sorted({f for f in fields if re.split(r"[.\[!:]", f, maxsplit=1)[0] not in URL_VARIABLES})
    if not bad:
        return []
    shown = ", ".join("{" + f + "}" for f in bad)
    return [URL_TEMPLATE.finding(
        f"{name}.json: url_template uses {shown}; only {{protocol}}, {{host}} and {{port}} are filled in",
        location=where,
    )]


def _templates(definition: ServiceDefinition) -> list[tuple[str, str]]:
    """Every templated string of a definition: command, env, default arguments and prestart arguments."""
    found = list(definition.templates())
    for index, action in enumerate(definition.prestart_actions):
        for key, value in action.args.model_dump().items():
            values = value if isinstance(value, list) else [value]
            found += [(f"prestart[{index}].args.{key}", v) for v in values if isinstance(v, str)]
    return found


def _port_expressions(text: str) -> list[template.Expr]:
    try:
        parts = template.parse(text)
    except template.TemplateError:
        return []
    return [p for p in parts if isinstance(p, template.Expr) and p.name == "ports"]


def _port_usage(item: _Loaded, entry: PortEntry) -> list[Finding]:
    definition, name = item.definition, item.source.name
    text = item.source.text or ""
    templates = _templates(definition)
    out: list[Finding] = []
    count = len(entry.ports)
    uses_ports = False
    for where, value in templates:
        for expr in _port_expressions(value):
            uses_ports = True
            index = expr.path[0] if expr.path else None
            if isinstance(index, int) and not -count <= index < count:
                out.append(PORT_INDEX.finding(
                    f"{name}.json: {where} uses {{{expr.source}}} but service {name!r} declares "
                    f"{count} port(s) ({entry.text})",
                    location=_at(item.source, key_line(text, _json_path(where))),
                ))
    if not uses_ports and not definition.noop:
        numbers = {str(p) for p in entry.ports}
        if not any(re.search(rf"(?<!\d){n}(?!\d)", v) for _, v in templates for n in numbers):
            out.append(PORT_UNUSED.finding(
                f"{name}.json never uses {{ports[0]}} or port {entry.ports[0]}; the app must listen on "
                f"{entry.ports[0]} by itself",
                location=_at(item.source, key_line(text, ["command"])),
            ))
    return out


def _json_path(where: str) -> list[str]:
    path = re.sub(r"\[\d+\]", "", where).split(".")
    return [p for p in path if p and not p.startswith("env key")]
