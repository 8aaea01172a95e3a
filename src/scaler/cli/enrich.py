"""`scaler enrich --policy FILE [ALARM]`: a paging alert, with scaler's diagnosis added."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from scaler.alerts import Alarm, group_for_alarm, parse_alarm
from scaler.cli import EXIT_FAILED, EXIT_OK, commands
from scaler.cli.common import add_aws_arguments, clients_from
from scaler.cli.views import render_tick
from scaler.errors import InputError
from scaler.live import TickAdvice, advise
from scaler.models import Severity
from scaler.policy import load_policy

__all__ = ["summary_line"]


def summary_line(alarm: Alarm, tick: TickAdvice) -> str:
    """One line for the pager: the worst finding and the advice, or why there is none."""
    if not tick.groups:
        why = tick.errors[0].error if tick.errors else "no data"
        return f"{alarm.name}: scaler could not diagnose the group: {why}"
    group = tick.groups[0]
    order = {Severity.CRITICAL: 0, Severity.WARNING: 1}
    # The cause before the symptom that usually paged: a growing backlog comes last.
    findings = sorted(
        group.advice.findings,
        key=lambda f: (order.get(f.severity, 2), f.kind == "backlog_growing"),
    )
    kinds = list(dict.fromkeys(f.kind for f in findings))
    state = kinds[0] if kinds else "no named state"
    if len(kinds) > 1:
        state += f" (also {', '.join(kinds[1:])})"
    advice = []
    if group.proposal is not None and group.proposal != group.state.desired:
        advice.append(f"desired capacity {group.proposal} (now {group.state.desired})")
    if group.instance_type:
        advice.append(f"instance type {group.instance_type}")
    return f"{alarm.name} on {group.group}: {state}; " + (
        ", ".join(advice) or "no capacity change advised"
    )


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--policy", required=True, help="policy YAML naming the groups")
    parser.add_argument(
        "alarm",
        nargs="?",
        default="-",
        help="alarm notification JSON: SNS message or envelope, Lambda SNS event, or EventBridge "
        "event (default: stdin)",
    )
    parser.add_argument("--format", choices=["text", "json"], default="text")
    add_aws_arguments(parser)
    return _run


def _run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    where = "<stdin>" if args.alarm == "-" else args.alarm
    try:
        text = sys.stdin.read() if args.alarm == "-" else Path(args.alarm).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot read the alarm: {exc}") from exc
    alarm = parse_alarm(text, where)
    group = group_for_alarm(alarm, policy)
    # The diagnosis of the moment it paged (never later than now, for alarms sent late).
    when = min(alarm.at, datetime.now(UTC))
    tick = advise(policy.model_copy(update={"groups": [group]}), clients_from(args), now=when)
    line = summary_line(alarm, tick)
    if args.format == "json":
        enriched = {
            "alarm": alarm.model_dump(mode="json"),
            "group": group.name,
            "summary": line,
            "diagnosis": tick.advice().to_json_dict(),
        }
        print(json.dumps(enriched, indent=2))
    else:
        head = f"{alarm.state} {alarm.name} at {alarm.at:%Y-%m-%d %H:%M} UTC: {alarm.reason}"
        print(render_tick(tick, f"{line}\n{head}"))
    return EXIT_FAILED if tick.errors else EXIT_OK


commands.register("enrich")(("add scaler's diagnosis to a CloudWatch alarm notification", _add))
