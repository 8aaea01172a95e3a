"""Advice for people: a short, plain timeline of findings and recommendations."""

from __future__ import annotations

import json
import textwrap

from scaler.instances.table import render_alternatives
from scaler.models import Advice, Finding, Recommendation, format_time

__all__ = ["render_json", "render_text"]

_WIDTH = 100


def render_json(advice: Advice) -> str:
    """Exactly one JSON object, the SIGNALS.md advice format (plus documented extensions)."""
    return json.dumps(advice.to_json_dict(), indent=2)


def _span(f: Finding) -> str:
    end = format_time(f.end)[11:16] if f.end else "ongoing"
    return f"{format_time(f.start)[:16].replace('T', ' ')} -> {end}"


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, _WIDTH, initial_indent=indent, subsequent_indent=indent)


def _recommendation(r: Recommendation, *, details: bool) -> list[str]:
    parts = []
    if r.desired_capacity is not None:
        now = f" (now {r.current_capacity})" if r.current_capacity is not None else ""
        parts.append(f"desired capacity {r.desired_capacity}{now}")
    if r.instance_type:
        parts.append(f"instance type {r.instance_type}")
    head = ", ".join(parts) or "no capacity opinion"
    lines = [f"  {format_time(r.at)[:16].replace('T', ' ')}  [{r.group}] {head}"]
    lines += _wrap(r.reason, "      ")
    if r.alternatives:
        lines.append("      Alternatives for the current load (cheapest per 1,000 messages first):")
        table = render_alternatives(r.alternatives, details=details)
        lines += [f"        {line}" for line in table]
    return lines


def render_text(advice: Advice, title: str | None = None) -> str:
    """A readable report: findings by time, then recommendations, then what was not judged."""
    lines: list[str] = [title, ""] if title else []
    lines.append(f"Findings ({len(advice.findings)})")
    if not advice.findings:
        lines.append("  none: no rule found the fleet in a named state")
    for f in advice.findings:
        lines.append(f"  {_span(f)}  {f.severity.value.upper():8} {f.kind} [{f.group}]")
        lines += _wrap(f.summary, "      ")
    lines += ["", f"Recommendations ({len(advice.recommendations)})"]
    if not advice.recommendations:
        lines.append("  none: capacity stayed within tolerance of the fleet's size")
    # The full notes under each group's latest table only; earlier tables are the numbers.
    last_table = {r.group: r for r in advice.recommendations if r.alternatives}
    for r in advice.recommendations:
        lines += _recommendation(r, details=last_table.get(r.group) is r)
    if advice.unevaluated:
        lines += ["", "Not evaluated (missing signals or too little data; never guessed)"]
        for u in advice.unevaluated:
            lines += _wrap(f"{u.kind} [{u.group}]: {u.reason}", "  ")
    if advice.errors:
        lines += ["", "Groups that could not be evaluated"]
        for e in advice.errors:
            retry = " (retryable)" if e.retryable else ""
            lines += _wrap(f"{e.group}: {e.error}{retry}", "  ")
    return "\n".join(lines)
