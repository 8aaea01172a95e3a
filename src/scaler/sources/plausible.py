"""Values no fleet can have are missing data, not data: the last step from a source to a Window.

Called by the live tick (`live.advise_group`) on every window it reads from CloudWatch, and by
the backtest (`backtest.evaluate_windows`) on every replayed window, before any rule sees it. A
negative instance count, an infinite backlog, a CPU share over 100%, or an in-service count
that contradicts the Auto Scaling group's own description would otherwise read as a fleet that
can shrink; here each becomes NaN (missing), and the caller is told in words ("instances read
-5: ignored") so the output says why a minute was not judged.
"""

from __future__ import annotations

import numpy as np

from scaler.signals import Signal, Window

__all__ = ["MAX_COUNT", "PlausibleWindow", "drop_implausible"]

#: More messages, or more per minute, than any queue or fleet holds (SQS has no hard limit,
#: but 10^12 is past any real backlog): a larger reading is a broken metric.
MAX_COUNT = 1e12
# Percent signals may read a little over 100 from rounding; more is not a measurement.
_PERCENT_LIMIT = 100.5
_PERCENT = frozenset(
    s
    for s in (
        "cpu_user",
        "cpu_iowait",
        "cpu_system",
        "cpu_steal",
        "cpu_idle",
        "mem_used",
        Signal.EBS_BYTE_BALANCE.value,
        Signal.EBS_IO_BALANCE.value,
    )
)
# How many of the newest minutes are compared with the group's description: the in-service
# metric lags the group by a minute or two, so only a gross disagreement counts.
_RECENT_MINUTES = 5
_DAY = 1440


class PlausibleWindow:
    """A window with implausible values made missing, and one note per signal affected."""

    def __init__(self, window: Window, notes: list[str], recent: bool) -> None:
        self.window = window
        self.notes = notes
        #: True when a value near the judged minute was dropped: no scale-in on this window.
        self.dropped_recent = recent


def drop_implausible(window: Window, *, in_service: int | None, max_size: int) -> PlausibleWindow:
    """`window` with every physically impossible value set to NaN, and what was dropped.

    `in_service` is the group's own count now (a live tick); a backtest has none to compare.
    """
    names = list(window.series)
    if not names or window.length == 0:
        return PlausibleWindow(window, [], False)
    # Every signal at once, one row each: a live tick checks ~17 short series a group.
    values = np.vstack([window.series[name] for name in names])
    bad = _impossible(names, values, max_size)
    if Signal.INSTANCES.value in names and in_service is not None:
        row = names.index(Signal.INSTANCES.value)
        bad[row] |= _contradicts_group(values[row], in_service)
    dropped = np.flatnonzero(bad.any(axis=1))
    if not len(dropped):
        return PlausibleWindow(window, [], False)
    series = dict(window.series)
    when = "%H:%M" if window.length <= _DAY else "%Y-%m-%d %H:%M"  # a replay may span days
    notes: list[str] = []
    recent = False
    for row in map(int, dropped):
        name, row_bad, row_values = names[row], bad[row], values[row]
        first = int(np.flatnonzero(row_bad)[0])
        count = int(row_bad.sum())
        notes.append(
            f"{name} read {_show(row_values[first])} at "
            f"{window.time_at(first):{when}} UTC"
            + (f" and {count - 1} more minute(s)" if count > 1 else "")
            + ": outside what the fleet can have, ignored"
        )
        recent |= bool(row_bad[-_RECENT_MINUTES:].any())
        series[name] = np.where(row_bad, np.nan, row_values)
    return PlausibleWindow(window.model_copy(update={"series": series}), notes, recent)


def _impossible(names: list[str], values: np.ndarray, max_size: int) -> np.ndarray:
    """Per row (signal) and minute: a present value no fleet can have (NaN is missing, not bad)."""
    with np.errstate(invalid="ignore"):
        bad: np.ndarray = np.isinf(values) | (values < 0) | (values > MAX_COUNT)
        percent = [row for row, name in enumerate(names) if name in _PERCENT]
        if percent:
            bad[percent] |= values[percent] > _PERCENT_LIMIT
        if Signal.INSTANCES.value in names:
            row = names.index(Signal.INSTANCES.value)
            counts = values[row]
            # Whole instances, never more than the group may hold.
            bad[row] |= (counts > max_size) | (np.abs(counts - np.round(counts)) > 0.01)
    return bad


def _contradicts_group(values: np.ndarray, in_service: int) -> np.ndarray:
    """The newest minutes' instance counts far from what the group says is in service now."""
    out = np.zeros(values.shape, dtype=bool)
    tail = values[-_RECENT_MINUTES:]
    allowed = max(2.0, 0.5 * in_service)
    with np.errstate(invalid="ignore"):
        out[-_RECENT_MINUTES:] = ~np.isnan(tail) & (np.abs(tail - in_service) > allowed)
    return out


def _show(value: float) -> str:
    if not np.isfinite(value):
        return str(value)
    return f"{value:g}"
