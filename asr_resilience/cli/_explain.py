"""``asr-resilience explain CODE``: what a code means, and what the policy does about it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._catalog import catalog
from .._durations import format_duration
from .._failure import SUCCESS, Failure
from .._language import resolve_language
from ..policy import load_policy


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "explain",
        help="explain a vendor status code (or HTTP status) and the action the policy takes",
        description="Explain a vendor status code: cause, fix, and what the policy does.",
    )
    parser.add_argument("code", type=_code, metavar="CODE", help="e.g. 40000005, or 403")
    parser.add_argument("--message", default="", help="the status text, to pick the exact entry")
    parser.add_argument(
        "--policy",
        default=None,
        help="policy file or shipped name (default: $ASR_RESILIENCE_POLICY or default)",
    )
    parser.add_argument("--lang", choices=("zh", "en"), default=None, help="language of the texts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def _code(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a status code: give digits, e.g. 40000005 or 403"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a status code: codes are positive")
    return value


def explanation(
    code: int, message: str, policy_source: str | None, lang: str | None
) -> dict[str, Any]:
    """The facts ``explain`` prints, as one JSON-ready mapping."""
    language = resolve_language(lang)
    policy = load_policy(policy_source)
    if code == SUCCESS:
        return {
            "code": code,
            "action": None,
            "name": "SUCCESS",
            "message": "SUCCESS",
            "cause": "成功。" if language == "zh" else "Success: not an error.",
            "solution": "无。" if language == "zh" else "Nothing to do.",
            "rule": None,
            "schedule": None,
            "policy": policy.name,
            "language": language,
        }
    is_http = code < 1000
    failure = (
        Failure(http_status=code)
        if is_http and code != 403
        else Failure(code=code, message=message)
    )
    decision = policy.decide(failure)
    entry = catalog().lookup(code, message or None) if not is_http else decision.entry
    schedule = decision.schedule()
    return {
        "code": code,
        "action": decision.action,
        "name": entry.name,
        "message": entry.message,
        "cause": entry.cause(language),
        "solution": entry.solution(language),
        "table": entry.table,
        "from_seed": entry.from_seed,
        "variants": list(entry.variants),
        "rule": decision.rule,
        "max_attempts": decision.max_attempts,
        "deadline": decision.deadline,
        "schedule": {
            "delays": list(schedule),
            "jitter": decision.backoff.jitter if schedule else None,
        },
        "throttled": decision.throttled,
        "policy": policy.name,
        "language": language,
    }


def run(args: argparse.Namespace) -> int:
    info = explanation(args.code, args.message, args.policy, args.lang)
    if args.json:
        sys.stdout.write(json.dumps(info, ensure_ascii=False) + "\n")
        return 0
    zh = info["language"] == "zh"
    labels = (
        ("消息", "原因", "解决方案", "处理", "重试计划")
        if zh
        else ("message", "cause", "fix", "action", "schedule")
    )
    title = f"{info['code']} {info['name'] or ''}".rstrip()
    lines = [title]
    if info["message"]:
        lines.append(f"  {labels[0]}: {info['message']}")
    lines.append(f"  {labels[1]}: {info['cause']}")
    lines.append(f"  {labels[2]}: {_indent(info['solution'])}")
    if info["action"] is None:
        sys.stdout.write("\n".join(lines) + "\n")
        return 0
    lines.append(
        f"  {labels[3]}: {info['action']} (rule {info['rule']!r}, policy {info['policy']!r})"
    )
    schedule = info["schedule"]
    if schedule and schedule["delays"]:
        waits = ", ".join(format_duration(d) for d in schedule["delays"])
        lines.append(
            f"  {labels[4]}: {info['max_attempts']} attempts, waits {waits} "
            f"({schedule['jitter']} jitter), deadline {format_duration(info['deadline'])}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _indent(text: str) -> str:
    return text.replace("\n", "\n      ")
