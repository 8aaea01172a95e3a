"""Advice for people: a short, plain timeline of findings and recommendations."""

from __future__ import annotations

import textwrap

from scaler.instances.table import render_alternatives
from scaler.models import Advice, Finding, Recommendation, advice_line, format_time

__all__ = ["render_json", "render_text"]

_WIDTH = 100


def render_json(advice: Advice) -> str:
    """Exactly one JSON object, the advice format (docs/advice-format.md), UTF-8.

    pydantic's own serializer writes the same object as `json.dumps(to_json_dict(), indent=2)`
    seven times faster (a 30-day backtest's 862 recommendations: 55 ms -> 8 ms); text is left
    as UTF-8 rather than escaped (`\u00d7` is `×`), as the text format prints it.
    """
    return advice.model_dump_json(indent=2)


def _span(f: Finding) -> str:
    end = format_time(f.end)[11:16] if f.end else "ongoing"
    return f"{format_time(f.start)[:16].replace('T', ' ')} -> {end}"


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, _WIDTH, initial_indent=indent, subsequent_indent=indent)


def _recommendation(r: Recommendation, *, details: bool) -> list[str]:
    head = r.summary or advice_line(r, None)
    lines = [f"  {format_time(r.at)[:16].replace('T', ' ')}  [{r.group}] {head}"]
    lines += _wrap(r.reason, "      ")
    if r.alternatives:
        lines.append("      Alternatives for the current load (cheapest per 1,000 messages first):")
        table = render_alternatives(r.alternatives, details=details)
        lines += [f"        {line}" for line in table]
    return lines


def _unknown_type_note(advice: Advice) -> list[str]:
    """What an unknown instance type costs, said first (it changes how to read the rest)."""
    groups = sorted({u.group for u in advice.unevaluated if "instance_type" in u.missing})
    if not groups:
        return []
    text = (
        f"Instance type unknown ({', '.join(groups)}): EBS-aware sizing and the EBS burst "
        "warning are off, so capacity is sized on throughput and CPU alone and cannot see a "
        "fleet running on burst credits. Give it with --instance-type TYPE or instance_type "
        "in the policy."
    )
    return [*_wrap(text, ""), ""]


def render_text(advice: Advice, title: str | None = None) -> str:
    """A readable report: what could not be read first, then findings, recommendations and
    what was not judged. A group that could not be read never reads as healthy."""
    lines: list[str] = [title, ""] if title else []
    if advice.errors:
        lines.append("Groups that could not be evaluated (no verdict for them)")
        for e in advice.errors:
            retry = " (retryable)" if e.retryable else ""
            lines += _wrap(f"{e.group}: {e.error}{retry}", "  ")
        lines.append("")
    lines += _unknown_type_note(advice)
    unread = f"no verdict for the {len(advice.errors)} group(s) that could not be read"
    lines.append(f"Findings ({len(advice.findings)})")
    if not advice.findings:
        if advice.errors:
            lines.append(f"  none found; {unread}")
        elif advice.unevaluated:
            lines.append("  none found by the rules that could judge (see 'Not evaluated' below)")
        else:
            lines.append("  none: no rule found the fleet in a named state")
    for f in advice.findings:
        lines.append(f"  {_span(f)}  {f.severity.value.upper():8} {f.kind} [{f.group}]")
        lines += _wrap(f.summary, "      ")
    lines += ["", f"Recommendations ({len(advice.recommendations)})"]
    if not advice.recommendations:
        lines.append(
            f"  none; {unread}"
            if advice.errors
            else "  none: capacity stayed within tolerance of the fleet's size"
        )
    # The full notes under each group's latest table only; earlier tables are the numbers.
    last_table = {r.group: r for r in advice.recommendations if r.alternatives}
    for r in advice.recommendations:
        lines += _recommendation(r, details=last_table.get(r.group) is r)
    if advice.unevaluated:
        lines += ["", "Not evaluated (missing signals or too little data; never guessed)"]
        for u in advice.unevaluated:
            lines += _wrap(f"{u.kind} [{u.group}]: {u.reason}", "  ")
    return "\n".join(lines)
