"""BAI1xx: the ``ai.backend.service-ports`` label, checked the way the agent parses it (strict mode).

The parser here (:func:`parse_service_ports`) is also what the label and
service-def rules use to learn which services an image declares, so every rule
module agrees on what the label means.  It never raises: text the agent would
reject becomes a :class:`SyntaxProblem`, and every piece that still has a
recognisable ``name:protocol:port`` shape becomes a :class:`PortEntry`, so the
other checks can go on after a syntax error.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from krunner.contract import ENDPOINT_PORTS_LABEL, INTRINSIC_SERVICES, RESERVED_PORTS, ROLE_LABEL, SERVICE_PORTS_LABEL

from ..findings import Finding, Location
from ..kernel_inputs import KernelInputs
from .catalogue import Rule, rule

LABEL = SERVICE_PORTS_LABEL
ENDPOINTS_LABEL = ENDPOINT_PORTS_LABEL

PROTOCOLS = ("tcp", "http", "preopen", "vnc", "rdp")
SPAWNED_PROTOCOLS = ("tcp", "http", "vnc", "rdp")  # protocols whose start runs a service-def
IGNORED_PROTOCOL = "pty"
PORT_MIN, PORT_MAX = 1025, 65534
INTRINSIC_NAMES = INTRINSIC_SERVICES

_ENTRY = re.compile(r"([\w-]+):(\w+):(\d+|\[\d+(?:,\d+)*\])")  # \w is Unicode, like the agent's parser
_KEBAB = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)

SUBJECT = "service-ports"

SYNTAX = rule(
    "BAI101",
    "error",
    "service-ports does not follow the strict grammar",
    "Write `name:protocol:port` entries separated by single commas, with no spaces anywhere, "
    "e.g. `jupyter:http:8091,tensorboard:http:6006`.",
    description="The manager parses the label leniently and silently drops pieces it cannot read, "
    "but the agent parses it strictly when it creates a kernel and fails with "
    "\"Invalid service-ports format\". Such an image is accepted at rescan and then every session fails.",
    subject=SUBJECT,
)
PROTOCOL = rule(
    "BAI102",
    "error",
    "unsupported service-port protocol",
    "Use one of tcp, http, preopen, vnc, rdp (lowercase).",
    description="The protocol is checked case-sensitively against tcp, http, preopen, vnc and rdp; "
    "anything else (including `HTTP` and the agent-only `internal`) gets the image rejected at rescan.",
    subject=SUBJECT,
)
RANGE = rule(
    "BAI103",
    "error",
    "service port out of range",
    "Pick a container port between 1025 and 65534.",
    description="Ports at or below 1024 and at or above 65535 are rejected, so the image is skipped at rescan.",
    subject=SUBJECT,
)
RESERVED = rule(
    "BAI104",
    "error",
    "service port is reserved",
    "Move the service to another port; 2000-2003, 2200 and 7681 belong to the runner, sshd and ttyd.",
    description="Ports 2000 and 2001 carry the REPL protocol, 2002 and 2003 the PTY protocol, 2200 the "
    "intrinsic sshd and 7681 the intrinsic web terminal. The agent's parser rejects them.",
    subject=SUBJECT,
)
DUP_PORT = rule(
    "BAI105",
    "error",
    "service port used twice",
    "Give every service its own container port.",
    description="A port may appear only once across all non-pty entries (\"already used by another service port\").",
    subject=SUBJECT,
)
DUP_NAME = rule(
    "BAI106",
    "error",
    "service name declared twice",
    "Rename or remove one of the entries; each name must be unique.",
    description="Upstream does not check names for uniqueness, but only one of the entries can ever be "
    "launched, and which one depends on the code path.",
    subject=SUBJECT,
)
PTY = rule(
    "BAI107",
    "warning",
    "pty service entry is ignored",
    "Remove the `pty` entry (the agent drops it); use an http service such as jupyter or the built-in web terminal instead.",
    description="`pty` entries are dropped by the agent's parser without notice, and their ports are not even "
    "checked. The old documentation still lists `pty`, which is why many images carry `ipython:pty:3000`.",
    subject=SUBJECT,
)
NAME_STYLE = rule(
    "BAI108",
    "warning",
    "service name is not ASCII kebab-case",
    "Use lowercase ASCII letters, digits and single hyphens, e.g. `triton-grpc`.",
    description="The parser accepts any `[\\w-]+` name (Unicode, uppercase, underscores), but names also "
    "become file names (`service-defs/<name>.json`) and URL parts; kebab-case avoids surprises.",
    subject=SUBJECT,
)
INTRINSIC = rule(
    "BAI109",
    "warning",
    "service name shadows an intrinsic service",
    "Rename the service; `sshd` and `ttyd` are provided by the runner on ports 2200 and 7681.",
    description="Upstream always starts its built-in launchers for `sshd` and `ttyd`, whatever the image "
    "declares, so an image's own entry with these names never runs its definition there.",
    subject=SUBJECT,
)
NUMERIC = rule(
    "BAI110",
    "warning",
    "service name is all digits",
    "Give the service a descriptive name containing letters.",
    description="User-requested preopen ports are added as services named by their port number "
    "(`8888`), so an all-digit image service name can collide with them.",
    subject=SUBJECT,
)
MULTI_INFERENCE = rule(
    "BAI111",
    "warning",
    "multi-port entry on an inference image",
    "Declare one port per entry on INFERENCE images.",
    description="The manager's lenient parser cannot read `name:proto:[p,q]` entries, so on an inference "
    "image they are invisible to the endpoint and preopen-collision checks.",
    subject=SUBJECT,
)
ENDPOINT = rule(
    "BAI112",
    "error",
    "endpoint port is not a declared single-port preopen service",
    "List in `ai.backend.endpoint-ports` only names declared in service-ports as `name:preopen:port`.",
    description="For an INFERENCE image the manager requires every endpoint-ports name to be a service port "
    "it can parse (single port, no brackets) with the protocol `preopen`; otherwise the image is skipped at rescan.",
    subject=SUBJECT,
)

EXAMPLES: dict[str, str] = {
    "BAI101": "`jupyter:http:8091, vscode:http:8180` → `jupyter:http:8091,vscode:http:8180`",
    "BAI102": "`web:HTTP:8080` → `web:http:8080`",
    "BAI103": "`web:http:80` → `web:http:8080`",
    "BAI104": "`shell:tcp:2200` → `shell:tcp:2222`",
    "BAI105": "`a:http:8080,b:http:8080` → `a:http:8080,b:http:8081`",
    "BAI106": "`app:http:8080,app:http:8081` → `app:http:8080,app-admin:http:8081`",
    "BAI107": "`ipython:pty:3000,jupyter:http:8091` → `jupyter:http:8091`",
    "BAI108": "`gRPC:tcp:8001` → `grpc:tcp:8001`",
    "BAI109": "`sshd:tcp:2222` → `ssh-alt:tcp:2222`",
    "BAI110": "`8080:http:8080` → `web:http:8080`",
    "BAI111": "`triton:preopen:[8000,8001]` → `triton-http:preopen:8000,triton-grpc:preopen:8001`",
    "BAI112": "`endpoint-ports=api` with `api:http:8000` → `api:preopen:8000`",
}


@dataclass(frozen=True)
class PortEntry:
    name: str
    protocol: str
    ports: tuple[int, ...]
    multi: bool  # written in the bracket form
    text: str  # the entry as written


@dataclass(frozen=True)
class SyntaxProblem:
    piece: str
    reason: str


@dataclass(frozen=True)
class ParsedPorts:
    entries: tuple[PortEntry, ...]
    problems: tuple[SyntaxProblem, ...]

    def active(self) -> list[PortEntry]:
        """Entries the agent keeps (everything but ``pty``)."""
        return [e for e in self.entries if e.protocol != IGNORED_PROTOCOL]

    def first(self, name: str) -> PortEntry | None:
        return next((e for e in self.active() if e.name == name), None)


def _split(value: str) -> list[str]:
    """Split on commas that are not inside ``[...]``."""
    pieces, current, depth = [], [], 0
    for ch in value:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
    pieces.append("".join(current))
    return pieces


def _entry(text: str) -> PortEntry | None:
    m = _ENTRY.fullmatch(text)
    if not m:
        return None
    spec = m.group(3)
    ports = tuple(int(p) for p in spec.strip("[]").split(","))
    return PortEntry(m.group(1), m.group(2), ports, spec.startswith("["), text)


def _why(piece: str) -> str:
    parts = piece.split(":")
    if len(parts) != 3:
        return f"{piece!r} is not NAME:PROTOCOL:PORT ({len(parts)} part(s) separated by ':')"
    name, proto, spec = parts
    if not re.fullmatch(r"[\w-]+", name):
        return f"name {name!r} may only contain letters, digits, '_' and '-'"
    if not re.fullmatch(r"\w+", proto):
        return f"protocol {proto!r} in {piece!r} is not a word"
    return f"port {spec!r} in {piece!r} must be digits or a bracketed list such as [8000,8001]"


def parse_service_ports(value: str) -> ParsedPorts:
    if value == "":
        return ParsedPorts((), ())
    pieces = _split(value)
    if len(pieces) > 1 and pieces[-1] == "":
        pieces.pop()  # one trailing comma is accepted
    entries: list[PortEntry] = []
    problems: list[SyntaxProblem] = []
    for piece in pieces:
        if piece == "":
            problems.append(SyntaxProblem(piece, "empty entry (a leading comma or ',,')"))
            continue
        stripped = piece.strip()
        if re.search(r"\s", stripped):
            problems.append(SyntaxProblem(piece, f"whitespace inside {piece!r} (no spaces are allowed anywhere)"))
            continue
        if stripped != piece:
            problems.append(SyntaxProblem(piece, f"whitespace around {stripped!r} (no spaces are allowed anywhere)"))
        entry = _entry(stripped)
        if entry is not None:
            entries.append(entry)
        elif stripped:
            problems.append(SyntaxProblem(piece, _why(stripped)))
    return ParsedPorts(tuple(entries), tuple(problems))


def declared(inputs: KernelInputs) -> ParsedPorts:
    """The image's service ports (empty when the label is absent)."""
    return parse_service_ports(inputs.labels.get(LABEL, ""))


# ------------------------------------------------------------------------------------ checks


def check(inputs: KernelInputs) -> list[Finding]:
    findings: list[Finding] = []
    parsed = declared(inputs)
    where = inputs.location_of(LABEL)
    if LABEL in inputs.labels:
        for problem in parsed.problems:
            findings.append(SYNTAX.finding(f"service-ports: {problem.reason}", location=where, label=LABEL))
        findings += _check_entries(parsed, inputs.labels.get(ROLE_LABEL) == "INFERENCE", where)
    if inputs.labels.get(ROLE_LABEL) == "INFERENCE":
        findings += _check_endpoints(inputs, parsed)
    return findings


def _check_entries(parsed: ParsedPorts, inference: bool, where: Location | None) -> list[Finding]:
    out: list[Finding] = []

    def add(r: Rule, message: str) -> None:
        out.append(r.finding(message, location=where, label=LABEL))

    seen_ports: dict[int, str] = {}
    for entry in parsed.entries:
        if entry.protocol == IGNORED_PROTOCOL:
            add(PTY, f"service {entry.name!r} uses protocol pty, which the agent silently drops")
            continue
        if entry.protocol not in PROTOCOLS:
            add(PROTOCOL, f"service {entry.name!r}: protocol {entry.protocol!r} is not one of {', '.join(PROTOCOLS)}"
                + _protocol_hint(entry.protocol))
        for port in entry.ports:
            if not PORT_MIN <= port <= PORT_MAX:
                add(RANGE, f"service {entry.name!r}: port {port} is outside {PORT_MIN}..{PORT_MAX}")
            elif port in RESERVED_PORTS:
                add(RESERVED, f"service {entry.name!r}: port {port} is reserved for {RESERVED_PORTS[port]}")
            if port in seen_ports:
                add(DUP_PORT, f"service {entry.name!r}: port {port} is already used by service {seen_ports[port]!r}")
            else:
                seen_ports[port] = entry.name
        if inference and entry.multi:
            add(MULTI_INFERENCE, f"service {entry.name!r} declares several ports {list(entry.ports)} on an INFERENCE image")
    counts = Counter(e.name for e in parsed.active())
    for name, n in counts.items():
        if n > 1:
            add(DUP_NAME, f"service name {name!r} is declared {n} times")
    for name in dict.fromkeys(e.name for e in parsed.entries):
        if name in INTRINSIC_NAMES:
            add(INTRINSIC, f"service name {name!r} is the intrinsic {name} launcher's name")
        elif name.isdigit():
            add(NUMERIC, f"service name {name!r} is all digits and can collide with a preopen port service")
        elif not _KEBAB.fullmatch(name):
            add(NAME_STYLE, f"service name {name!r} is not ASCII kebab-case (suggested: {_kebab(name)!r})")
    return out


def _protocol_hint(protocol: str) -> str:
    if protocol.lower() in PROTOCOLS:
        return f" (protocols are case-sensitive: write {protocol.lower()!r})"
    if protocol == "internal":
        return " ('internal' is reserved for the agent)"
    return ""


def _kebab(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return text or "service"


def _check_endpoints(inputs: KernelInputs, parsed: ParsedPorts) -> list[Finding]:
    value = inputs.labels.get(ENDPOINTS_LABEL)
    if not value:
        return []  # missing/empty endpoint-ports is a label rule (BAI021/BAI022)
    where = inputs.location_of(ENDPOINTS_LABEL)
    out: list[Finding] = []
    for name in (n for n in value.split(",") if n):
        entry = parsed.first(name)
        if entry is None:
            why = "is not declared in ai.backend.service-ports"
        elif entry.multi:
            why = f"is a multi-port entry ({entry.text}), which the manager cannot parse"
        elif entry.protocol != "preopen":
            why = f"has protocol {entry.protocol!r}, but endpoints must be preopen"
        else:
            continue
        out.append(ENDPOINT.finding(f"endpoint port {name!r} {why}", location=where, label=ENDPOINTS_LABEL))
    return out
