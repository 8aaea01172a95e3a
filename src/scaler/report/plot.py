"""One group's window as stacked panels on a shared UTC time axis, with its findings shaded.

Called by `scaler.report` (for `scaler backtest --plot`, `scaler report` and the demo).
matplotlib is imported here only, with the Agg backend: no display is needed, and commands
that draw nothing never pay for the import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from scaler.instances.catalog import InstanceFacts
from scaler.models import Finding, Recommendation
from scaler.signals import Series, Signal, Window

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PANELS", "WIDTH_PX", "draw_window"]

WIDTH_PX = 1600
_DPI = 100
_MB = 1e6
#: Panel titles, top to bottom; the test and the HTML report name panels by these.
PANELS = (
    "findings",
    "queue",
    "arrivals vs throughput",
    "CPU",
    "EBS per instance",
    "memory",
    "capacity",
)
# Colours a colour-blind reader can tell apart (Okabe-Ito), one per finding kind.
_KIND_COLOURS = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
_LINE: dict[str, Any] = {"lw": 1.4}


@dataclass(frozen=True)
class _Span:
    kind: str
    start: float  # matplotlib date numbers (days), the unit of the shared x axis
    end: float
    onset: datetime
    onset_text: str  # HH:MM, with the date when the window is longer than a day
    colour: str
    severity: str


def draw_window(
    window: Window,
    findings: Sequence[Finding],
    recommendations: Sequence[Recommendation],
    facts: InstanceFacts | None,
    title: str,
) -> Figure:
    """The figure for one group: 1,600 px wide, one panel per entry of PANELS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.ticker import StrMethodFormatter

    fig = Figure(figsize=(WIDTH_PX / _DPI, 19), dpi=_DPI, layout="constrained")
    heights = [0.5 + 0.28 * len({f.kind for f in findings}), 3, 2.4, 2.4, 2.8, 1.8, 2.4]
    axes = fig.subplots(len(PANELS), 1, sharex=True, height_ratios=heights)
    first = np.datetime64(window.start.replace(tzinfo=None), "m")
    times = _days(first + np.arange(window.length + 1))
    spans = _spans(window, findings)
    drawers = (
        _findings_panel,
        _queue_panel,
        _throughput_panel,
        _cpu_panel,
        _ebs_panel,
        _memory_panel,
        _capacity_panel,
    )
    thousands = StrMethodFormatter("{x:,.0f}")
    for ax, name, draw in zip(axes, PANELS, drawers, strict=True):
        ax.set_label(name)
        ax.yaxis.set_major_formatter(thousands)  # 350,000 messages, not 350000
        if name == "findings":
            draw(ax, times, window, spans, facts, recommendations)
            continue
        for span in spans:
            ax.axvspan(span.start, span.end, color=span.colour, alpha=0.12, lw=0)
            ax.axvline(span.start, color=span.colour, lw=1.2, ls="--")
        draw(ax, times, window, spans, facts, recommendations)
        _label_onsets(ax, spans)
        ax.grid(True, alpha=0.3)
        ax.margins(x=0)
        # One legend per panel, the right-hand axis's series included.
        handles, labels = ax.get_legend_handles_labels()
        for twin in (a for a in fig.axes if a.get_label() == f"{name} (right)"):
            more = twin.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        if handles:
            # Outside, right of the right-hand axis: a legend never covers the data.
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.06, 1.0), fontsize=9)
    bottom = axes[-1]
    locator = mdates.AutoDateLocator(minticks=8, maxticks=16)  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_formatter(formatter)
    bottom.set_xlabel("time (UTC)")
    if window.length:
        bottom.set_xlim(float(times[0]), float(times[-1]))
    fig.suptitle(title, fontsize=14, x=0.01, ha="left")
    return fig


def _label_onsets(ax: Axes, spans: list[_Span]) -> None:
    """The kind's name beside the first onset of each kind, one row per kind: no overlaps."""
    kinds = list(dict.fromkeys(s.kind for s in spans))
    for span in spans:
        if span.kind not in kinds:
            continue
        row = kinds.index(span.kind)
        kinds[row] = ""  # labelled once per panel
        ax.annotate(
            span.kind,
            (span.start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -11 - 11 * row),
            textcoords="offset points",
            fontsize=8,
            color=span.colour,
            fontweight="bold",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            zorder=5,  # above the data lines
        )


def _days(when: Any) -> Any:
    """Times as matplotlib date numbers (days), the unit of the shared x axis."""
    import matplotlib.dates as mdates

    return mdates.date2num(when)  # type: ignore[no-untyped-call]


def _spans(window: Window, findings: Sequence[Finding]) -> list[_Span]:
    onset = {f.kind: f.start for f in sorted(findings, key=lambda f: f.start, reverse=True)}
    kinds = sorted(onset, key=lambda k: onset[k])
    colour = {k: _KIND_COLOURS[i % len(_KIND_COLOURS)] for i, k in enumerate(kinds)}
    end_of_window = window.time_at(window.length)
    # A finding's `end` is the last minute it held: its span runs to the end of that minute.
    return [
        _Span(
            kind=f.kind,
            start=float(_days(f.start)),
            end=float(_days(f.end + timedelta(minutes=1) if f.end else end_of_window)),
            onset=f.start,
            onset_text=f"{f.start:%H:%M}" if window.length <= 1440 else f"{f.start:%m-%d %H:%M}",
            colour=colour[f.kind],
            severity=f.severity.value,
        )
        for f in findings
    ]


def _findings_panel(ax: Axes, times: Any, window: Window, spans: list[_Span], *_: Any) -> None:
    """One lane per finding kind, a bar per span, the onset time written at its start."""
    kinds = list(dict.fromkeys(s.kind for s in spans))
    ax.set_ylim(-0.6, max(len(kinds), 1) - 0.4)
    ax.invert_yaxis()
    # The lane's name carries its first onset: beside the axis, it never covers a span.
    first = {k: next(s for s in spans if s.kind == k) for k in kinds}
    ax.set_yticks(
        range(len(kinds)),
        [f"{k}\nfrom {first[k].onset_text} ({first[k].severity})" for k in kinds],
        fontsize=9,
    )
    for tick, kind in zip(ax.get_yticklabels(), kinds, strict=True):
        tick.set_color(first[kind].colour)
        tick.set_fontweight("bold")
    if not kinds:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no findings", transform=ax.transAxes, ha="center", va="center")
    ax.set_title("findings (shaded below; dashed line = onset)", loc="left", fontsize=11)
    for span in spans:
        lane = kinds.index(span.kind)
        ax.barh(lane, span.end - span.start, left=span.start, height=0.6, color=span.colour)
    ax.grid(True, axis="x", alpha=0.3)


def _plot(ax: Axes, times: Any, values: Series | None, label: str, **style: Any) -> bool:
    """A series as a line; sparse ones (5-minute data) join their points instead of gaps."""
    if values is None or not np.isfinite(values).any():
        return False
    times = times[: len(values)]
    finite = np.isfinite(values)
    if finite.mean() < 0.5:
        ax.plot(times[finite], values[finite], label=label, **{**_LINE, **style})
    else:
        ax.plot(times, values, label=label, **{**_LINE, **style})
    return True


def _right_axis(
    ax: Axes, times: Any, values: Series | None, label: str, unit: str, top: float | None = None
) -> bool:
    """A second series on a right-hand axis of its own unit, with its own legend."""
    if values is None or not np.isfinite(values).any():
        return False
    right = ax.twinx()
    right.set_label(f"{ax.get_label()} (right)")
    right.set_ylabel(unit)
    style = {"color": "C5"} if top else {"color": "C3", "ls": "--"}
    _plot(right, times, values, label, **style)
    right.set_ylim(0, top)
    return True


def _absent(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not in this replay", transform=ax.transAxes, ha="center", alpha=0.6)


def _queue_panel(ax: Axes, times: Any, window: Window, *_: Any) -> None:
    ax.set_title("queue", loc="left", fontsize=11)
    ax.set_ylabel("messages visible")
    visible = _plot(ax, times, window.get(Signal.QUEUE_VISIBLE), "visible (messages)", color="C0")
    age = window.get(Signal.QUEUE_OLDEST_AGE)
    minutes = None if age is None else age / 60
    shown = _right_axis(ax, times, minutes, "oldest age (min, right)", "oldest message age (min)")
    shown = shown or visible
    if not shown:
        _absent(ax, "queue_visible, queue_oldest_age")


def _throughput_panel(ax: Axes, times: Any, window: Window, *_: Any) -> None:
    ax.set_title("arrivals vs throughput", loc="left", fontsize=11)
    ax.set_ylabel("messages / min")
    sent = _plot(ax, times, window.get(Signal.QUEUE_SENT), "arrivals (sent)", color="C1")
    done = _plot(ax, times, window.get(Signal.QUEUE_DELETED), "throughput (deleted)", color="C2")
    if not (sent or done):
        _absent(ax, "queue_sent, queue_deleted")
    ax.set_ylim(bottom=0)


def _cpu_panel(ax: Axes, times: Any, window: Window, *_: Any) -> None:
    ax.set_title("CPU (fleet average per instance)", loc="left", fontsize=11)
    ax.set_ylabel("% of CPU time")
    shown = [
        _plot(ax, times, window.get(signal), label, color=colour)
        for signal, label, colour in (
            ("cpu_user", "user", "C0"),
            ("cpu_system", "system", "C4"),
            ("cpu_iowait", "iowait", "C3"),
            ("cpu_steal", "steal", "C7"),
        )
    ]
    if not any(shown):
        _absent(ax, "cpu_user, cpu_system, cpu_iowait")
    ax.set_ylim(0, 100)


def _ebs_panel(
    ax: Axes, times: Any, window: Window, spans: Any, facts: InstanceFacts | None, *_: Any
) -> None:
    ax.set_title("EBS per instance", loc="left", fontsize=11)
    ax.set_ylabel("MB/s")
    parts = [window.get(s) for s in (Signal.EBS_READ_BYTES, Signal.EBS_WRITE_BYTES)]
    present = [p for p in parts if p is not None]
    shown = False
    if present:
        total = np.sum(present, axis=0) / 60 / _MB
        shown = _plot(ax, times, total, "read + write (MB/s)", color="C0")
    if facts is not None:
        ax.axhline(
            facts.ebs_baseline_mb_s,
            color="k",
            ls=":",
            lw=1.2,
            label=f"{facts.instance_type} baseline {facts.ebs_baseline_mb_s:g} MB/s",
        )
        if facts.ebs_bursts:
            ax.axhline(
                facts.ebs_max_mb_s,
                color="0.45",
                ls="-.",
                lw=1.2,
                label=f"burst {facts.ebs_max_mb_s:g} MB/s",
            )
        ax.set_ylim(0, facts.ebs_max_mb_s * 1.15)
    balance = window.get(Signal.EBS_BYTE_BALANCE)
    shown = (
        _right_axis(ax, times, balance, "burst balance (%, right)", "burst balance (%)", top=105)
        or shown
    )
    if not shown:
        _absent(ax, "ebs_read_bytes, ebs_write_bytes, ebs_byte_balance")


def _memory_panel(ax: Axes, times: Any, window: Window, *_: Any) -> None:
    ax.set_title("memory", loc="left", fontsize=11)
    ax.set_ylabel("% used")
    if not _plot(ax, times, window.get(Signal.MEM_USED), "memory used", color="C4"):
        _absent(ax, "mem_used")
    ax.set_ylim(0, 100)


def _capacity_panel(
    ax: Axes,
    times: Any,
    window: Window,
    spans: Any,
    facts: Any,
    recommendations: Sequence[Recommendation],
) -> None:
    ax.set_title("capacity", loc="left", fontsize=11)
    ax.set_ylabel("instances")
    shown = _plot(
        ax,
        times,
        window.get(Signal.INSTANCES),
        "in service (actual)",
        color="k",
        drawstyle="steps-post",
    )
    advised = [r for r in recommendations if r.desired_capacity is not None]
    if advised:
        xs = [float(_days(r.at)) for r in advised]
        ys = [float(r.desired_capacity or 0) for r in advised]
        ax.step(
            [*xs, float(times[-1])], [*ys, ys[-1]], where="post", color="C2", lw=2, label="advised"
        )
        if len(xs) <= 60:  # each advice a dot, while dots can still be told apart
            ax.plot(xs, ys, "o", color="C2", ms=4)
        shown = True
    if not shown:
        _absent(ax, "instances")
    ax.set_ylim(bottom=0)
