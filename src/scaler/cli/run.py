"""`scaler run --policy FILE [--apply] [--every 60s]` and `scaler history`.

Exit codes of `run`: 0 every group was read, decided and recorded (a rail holding an action
back is a decision); 1 a group could not be read or decided, an AWS call failed or its outcome
is unknown, or the tick was stopped before every group was decided; 2 bad input (policy,
flags, state location). With `--every` the loop keeps going after a failed tick and exits 0
when stopped by SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType

from scaler.cli import EXIT_FAILED, EXIT_OK, commands
from scaler.cli.advise import add_aws_arguments, clients_from
from scaler.control import STATE_ENV, AuditRecord, StateStore, open_store
from scaler.control_settings import StateSettings
from scaler.controller import GroupOutcome, TickReport, run_tick
from scaler.errors import InputError
from scaler.loop import parse_interval, run_every
from scaler.models import format_time
from scaler.policy import load_policy

__all__ = ["render_report"]


def render_report(report: TickReport) -> str:
    """One tick for people: per group, the advice, the decision, the call and the rails."""
    lines = [f"scaler run {report.tick_id} ({report.mode}) at {format_time(report.at)}"]
    for outcome in report.groups:
        lines += _group_lines(outcome)
    for error in report.errors:
        lines.append(f"  {error.group}: not evaluated: {error.error}")
    return "\n".join(lines)


def _group_lines(outcome: GroupOutcome) -> list[str]:
    advice = outcome.advice
    found = ", ".join(sorted({f.kind for f in advice.advice.findings})) or "no findings"
    lines = [f"  {advice.headline()}", f"    findings: {found}"]
    lines += [f"    note: {note}" for note in advice.notes]
    if outcome.status != "decided" or outcome.action is None:
        detail = outcome.error or {
            "leased-elsewhere": "another tick holds this group's lease: left to it",
            "abandoned": "stopped before this group was decided: nothing done",
        }.get(outcome.status, outcome.status)
        return [*lines, f"    {outcome.status}: {detail}"]
    record = outcome.action.outcome
    proposal = "no proposal" if record.proposal is None else f"proposal {record.proposal}"
    target = "no change" if record.target is None else f"target {record.target}"
    lines.append(f"    {proposal}, {target}: {record.result}")
    if record.call is not None:
        args = ", ".join(f"{k}={v}" for k, v in record.call.params.items())
        verb = "called" if record.result == "applied" else "would call"
        lines.append(f"    {verb} {record.call.operation}({args})")
    lines += _why(record)
    if outcome.type_change is not None:
        lines += _type_change_lines(outcome.type_change.outcome)
    return lines


def _why(record: AuditRecord) -> list[str]:
    """The rails that held, the notes and any error of one audit record."""
    lines = [f"    held by: {', '.join(record.rails)}"] if record.rails else []
    lines += [f"    - {note}" for note in record.notes]
    return lines + ([f"    error: {record.error}"] if record.error else [])


def _type_change_lines(record: AuditRecord) -> list[str]:
    lines = [f"    instance type {record.current_type} -> {record.target_type}: {record.result}"]
    verb = "called" if record.result == "applied" else "would call"
    for call in record.calls:
        lines.append(f"    {verb} {call.operation}({json.dumps(call.params, sort_keys=True)})")
    return lines + _why(record)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An Event set by SIGTERM or SIGINT, with the previous handlers restored afterwards."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _add_run(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--policy", required=True, help="policy YAML naming the groups")
    parser.add_argument(
        "--apply",
        action="store_true",
        help="act within the rails (default: dry-run, unless the policy says mode: apply)",
    )
    parser.add_argument("--every", help="run a tick every interval (60, 60s, 5m) until stopped")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    add_aws_arguments(parser)
    return _run


def _run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    every = parse_interval(args.every) if args.every else None
    clients = clients_from(args)
    store = open_store(policy.state, dynamodb=clients.dynamodb)
    try:
        with _stop_on_signals() as stop:

            def tick() -> bool:
                report = run_tick(
                    policy, clients, store, now=datetime.now(UTC), apply=args.apply, stop=stop
                )
                _print(report, args.format, compact=every is not None)
                return report.ok

            if every is None:
                return EXIT_OK if tick() else EXIT_FAILED
            run_every(tick, every, stop)
            return EXIT_OK
    finally:
        store.close()


def _print(report: TickReport, fmt: str, *, compact: bool) -> None:
    if fmt == "json":
        print(report.model_dump_json(indent=None if compact else 2), flush=True)
    else:
        print(render_report(report) + ("\n" if compact else ""), flush=True)


def _add_history(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--policy", help="policy YAML: its groups and its state location")
    parser.add_argument(
        "--group",
        action="append",
        help="only this group (repeatable): a policy group, or an Auto Scaling group's name",
    )
    parser.add_argument("--limit", type=int, default=50, help="newest records per group (50)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    add_aws_arguments(parser)
    return _history


def _history(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise InputError(f"--limit {args.limit}: must be at least 1")
    policy = load_policy(args.policy) if args.policy else None
    names = args.group or (policy.names() if policy else [])
    # The audit log is keyed by Auto Scaling group; a policy maps its group names to them.
    asg_of = {g.name: g.asg_name for g in policy.groups} if policy else {}
    groups = [asg_of.get(name, name) for name in names]
    if not groups:
        raise InputError("give --group NAME, or --policy FILE to show every group of a policy")
    settings = policy.state if policy else StateSettings()
    needs_aws = bool(settings.dynamodb_table) or "dynamodb://" in os.environ.get(STATE_ENV, "")
    store: StateStore = open_store(
        settings, dynamodb=clients_from(args).dynamodb if needs_aws else None
    )
    try:
        records = [r for g in groups for r in store.audit(g, limit=args.limit)]
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
    elif not records:
        print(f"no decisions recorded yet for {', '.join(groups)}")
    else:
        for record in records:
            print(record.summary())
            for note in record.notes:
                print(f"    - {note}")
    return EXIT_OK


commands.register("run")(("tick: advise, then act within the rails with --apply", _add_run))
commands.register("history")(("show the audit log of decisions, advised or applied", _add_history))
