"""``asr-resilience policy check|show|schema|reference``: validate policy files, show the
effective table, print the JSON Schema of policy files or the policy reference generated from it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._columns import columns
from .._durations import format_duration
from ..policy import check_policy, load_policy
from ..policy._json_schema import policy_schema_json
from ..policy._reference import policy_reference
from ..policy._review import effective_table, warnings


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "policy", help="check or show policy files", description="Check or show policy files."
    )
    sub = parser.add_subparsers(
        dest="policy_command", metavar="SUBCOMMAND", parser_class=type(parser)
    )
    sub.required = True
    check = sub.add_parser("check", help="validate policy files (exit 2 on any mistake)")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=run_check)
    show = sub.add_parser("show", help="the effective table of a policy, after extends")
    show.add_argument("file", metavar="FILE", help="a policy file or a shipped policy's name")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=run_show)
    schema = sub.add_parser(
        "schema", help="the JSON Schema of policy files (for editors: yaml-language-server)"
    )
    schema.add_argument("--output", metavar="FILE", help="write it to FILE instead of stdout")
    schema.set_defaults(handler=lambda args: _emit(policy_schema_json(), args.output))
    reference = sub.add_parser(
        "reference", help="the policy reference (Markdown) generated from the schema"
    )
    reference.add_argument("--output", metavar="FILE", help="write it to FILE instead of stdout")
    reference.set_defaults(handler=lambda args: _emit(policy_reference(), args.output))


def _emit(text: str, output: str | None) -> int:
    if output is None:
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    return 0


def run_check(args: argparse.Namespace) -> int:
    failed = False
    for file in args.files:
        issues = check_policy(file)
        for issue in issues:
            sys.stderr.write(f"{issue}\n")
        failed = failed or bool(issues)
        if not issues:
            sys.stdout.write(f"{file}: ok\n")
    return 2 if failed else 0


def run_show(args: argparse.Namespace) -> int:
    policy = load_policy(args.file)
    rows: list[dict[str, Any]] = []
    for row in effective_table(policy):
        d = row.decision
        rows.append(
            {
                "code": row.label,
                "name": d.entry.name,
                "action": d.action,
                "rule": d.rule,
                "max_attempts": d.max_attempts,
                "schedule": list(d.schedule()),
                "jitter": d.backoff.jitter if d.action == "retry" else None,
                "deadline": d.deadline,
            }
        )
    notes = warnings(policy)
    if args.json:
        out = {"policy": policy.name, "source": policy.source, "rows": rows, "warnings": notes}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return 0
    sys.stdout.write(f"policy {policy.name!r} ({policy.source})\n")
    table = []
    for r in rows:
        waits = ", ".join(format_duration(x) for x in r["schedule"]) or "-"
        if r["schedule"]:
            waits += f" ({r['jitter']}; deadline {format_duration(r['deadline'])})"
        table.append((r["code"], r["name"] or "", r["action"], r["rule"], r["max_attempts"], waits))
    header, *lines = columns(("code", "name", "action", "rule", "att", "schedule"), table, {4})
    sys.stdout.write(header + "\n" + "-" * len(header) + "\n")
    for line in lines:
        sys.stdout.write(line + "\n")
    for note in notes:
        sys.stdout.write(f"warning: {note}\n")
    return 0
