"""The command line's views of a tick: `scaler advise`'s and `scaler run`'s text output.

Called by the command modules (advise, run, enrich, demo); the advice itself is rendered by
`scaler.render`, which these build on.
"""

from __future__ import annotations

import json

from scaler.control import AuditRecord
from scaler.controller import GroupOutcome, TickReport
from scaler.live import TickAdvice
from scaler.models import format_time
from scaler.render import render_text

__all__ = ["render_report", "render_tick"]


def render_tick(tick: TickAdvice, title: str) -> str:
    """A tick for people: each group's state and data age, then findings and advice."""
    lines = [title]
    for group in tick.groups:
        lines.append(f"  {group.headline()}")
        lines += [f"    note: {note}" for note in group.notes]
    lines.append(
        f"  CloudWatch: {tick.metric_queries} queries in {tick.metric_calls} GetMetricData call(s)"
    )
    return render_text(tick.advice(), "\n".join(lines))


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
    sized = next((r for r in advice.advice.recommendations if r.summary), None)
    if sized is not None:
        lines.append(f"    advice: {sized.summary}")
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
