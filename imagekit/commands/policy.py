"""``bai-imagekit policy``: write a default jail policy, or check one (rules BAI4xx)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UsageError
from ..findings import Location, Severity, sorted_findings
from ..kernel_inputs import KernelInputs
from ..policy import POLICY_PATH, default_policy, dump_policy

_DESCRIPTION = f"""\
Work with the jail policy file an image ships at {POLICY_PATH}.

The policy is read only when the agent runs sessions with sandbox-type 'jail'
and passes --policy; see docs/jail-policy.md for every key."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="write or check a jail policy file (policy.yml)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", parser_class=type(parser))

    init = sub.add_parser(
        "init",
        help="write the default policy (current layout, with comments)",
        description="Write a commented default jail policy: the jail's defaults plus unlimited execs "
        "and the usual environment keys. Prints to stdout unless -o is given.",
        epilog=f"Example: bai-imagekit policy init -o policy.yml   (then COPY policy.yml {POLICY_PATH})",
    )
    init.add_argument("-o", "--output", metavar="FILE", type=Path, help="write to FILE instead of stdout")
    init.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    init.set_defaults(handler=_init)

    check = sub.add_parser(
        "check",
        help="check a policy file against what the current jail accepts",
        description="Check a jail policy file: YAML syntax, unknown or missing keys, types, the Go-era "
        "layout, and values that make the jail panic or every program fail (rules BAI401-BAI415).",
        epilog="Exit codes: 0 no errors (warnings allowed unless --strict), 1 errors found, 2 unreadable file.",
    )
    check.add_argument("file", metavar="FILE", type=Path, help="the policy.yml to check")
    check.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    check.add_argument("--strict", action="store_true", help="also exit 1 on warnings")
    check.set_defaults(handler=_check)


def _init(args: argparse.Namespace) -> int:
    text = dump_policy(default_policy())
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if args.output.exists() and not args.force:
        raise UsageError(f"{args.output} exists; use --force to overwrite it")
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from exc
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..rules.jail_policy import check_text

    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
    text = raw.decode("utf-8", errors="replace")
    inputs = KernelInputs(
        target=str(args.file), labels={}, policy_text=text, policy_location=Location(file=str(args.file))
    )
    findings = sorted_findings(check_text(inputs))
    if args.format == "json":
        print(json.dumps([f.model_dump(mode="json") for f in findings], indent=2, ensure_ascii=False))
    else:
        for f in findings:
            print(f"{f.location}: {f.severity.value} {f.rule}: {f.message}")
            if f.hint:
                print(f"    hint: {f.hint}")
        counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
        summary = ", ".join(f"{n} {s.value}(s)" for s, n in counts.items() if n) or "no problems"
        print(f"{args.file}: {summary}", file=sys.stderr)
    threshold = Severity.WARNING if args.strict else Severity.ERROR
    return 1 if any(f.severity.at_least(threshold) for f in findings) else 0
