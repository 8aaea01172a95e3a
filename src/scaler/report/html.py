"""One self-contained HTML report of a backtest: the pictures, the findings, the advice timeline.

Called by `scaler report`. Everything is inline (the PNGs as data: URLs, the style in the
head): the file opens offline and can be attached to a postmortem as it is. Every text from
the replay or the advice is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping

from scaler.backtest import Overrides
from scaler.models import Advice, format_time
from scaler.policy import Policy
from scaler.signals import Window

__all__ = ["render_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1650px; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { text-align: left; padding: 0.35em 0.6em; border-bottom: 1px solid #eee; }
td { vertical-align: top; }
th { background: #f4f4f4; } td.t { white-space: nowrap; font-family: monospace; }
.critical { color: #b00020; font-weight: bold; } .warning { color: #a15c00; font-weight: bold; }
img { width: 100%; height: auto; border: 1px solid #ddd; }
"""


def render_html(
    windows: Mapping[str, Window],
    advice: Advice,
    policy: Policy,
    overrides: Overrides | None,
    source: str,
) -> str:
    """The report as one HTML document (no external URLs)."""
    from scaler.report import figure_for

    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>scaler report: {esc(source)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>scaler backtest of {esc(source)}</h1>",
        "<p>"
        + "<br>".join(
            f"{esc(w.group)}: {w.start:%Y-%m-%d %H:%M} to {w.time_at(w.length):%Y-%m-%d %H:%M} "
            f"UTC ({w.length:,} minutes, {len(w.series)} signals)"
            for w in windows.values()
        )
        + "</p>",
    ]
    for window in windows.values():
        figure = figure_for(window, advice, policy, overrides)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        parts.append(f"<h2>{esc(window.group)}</h2>")
        parts.append(
            f'<img alt="signals and findings of {esc(window.group)}" '
            f'src="data:image/png;base64,{data}">'
        )
    parts.append(f"<h2>Findings ({len(advice.findings)})</h2>")
    parts.append(
        "<table><tr><th>from</th><th>to</th><th>severity</th><th>kind</th><th>group</th>"
        "<th>what scaler said</th></tr>"
    )
    for f in advice.findings:
        sev = f.severity.value
        parts.append(
            f'<tr><td class="t">{format_time(f.start)}</td>'
            f'<td class="t">{format_time(f.end) if f.end else "ongoing"}</td>'
            f'<td class="{sev}">{sev}</td><td>{esc(f.kind)}</td><td>{esc(f.group)}</td>'
            f"<td>{esc(f.summary)}</td></tr>"
        )
    parts.append("</table>")
    parts.append(f"<h2>Advice timeline ({len(advice.recommendations)})</h2>")
    parts.append(
        "<table><tr><th>at</th><th>group</th><th>desired capacity</th><th>now</th>"
        "<th>instance type</th><th>why</th></tr>"
    )
    for r in advice.recommendations:
        parts.append(
            f'<tr><td class="t">{format_time(r.at)}</td><td>{esc(r.group)}</td>'
            f"<td>{_or_dash(r.desired_capacity)}</td><td>{_or_dash(r.current_capacity)}</td>"
            f"<td>{esc(r.instance_type or '-')}</td><td>{esc(r.reason)}</td></tr>"
        )
    parts.append("</table>")
    if advice.unevaluated:
        parts.append("<h2>Not judged</h2><ul>")
        parts += [
            f"<li>{esc(u.kind)} [{esc(u.group)}]: {esc(u.reason)}</li>" for u in advice.unevaluated
        ]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)
