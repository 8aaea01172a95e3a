"""CloudWatch datapoints onto scaler's minute grid: one signal's answer to one query.

Called by `sources/cloudwatch.py` as it builds each group's window (and by its tests): an
answer of one datapoint a period, none missing, is placed as one slice; anything else is sorted
and placed datapoint by datapoint, the later of two in one minute kept. Periods that end after
the read's `stop` are not complete and are dropped.
"""

from __future__ import annotations

import math
import operator
from datetime import datetime

import numpy as np

from scaler.signals import MINUTE, Series
from scaler.sources.metric_map import MetricSpec

__all__ = ["evenly_spaced", "per_instance", "place", "place_evenly"]


def place(
    points: tuple[list[datetime], list[float]],
    spec: MetricSpec,
    *,
    first: datetime,
    length: int,
    stop: datetime,
) -> Series:
    """Datapoints on the minute grid; periods that end after `stop` are not complete: dropped."""
    values = np.full(length, np.nan)
    stamps, raw = points[0], np.asarray(points[1], dtype=np.float64)
    spaced = evenly_spaced(stamps, spec.period_s)
    if spaced is not None:
        oldest, ascending = spaced
        place_evenly(
            values,
            raw if ascending else raw[::-1],
            oldest - first.timestamp(),
            spec,
            complete_until=stop.timestamp() - oldest,
        )
        return values
    times = np.array([s.timestamp() for s in stamps], dtype=np.float64)
    # Ascending time, stable: where two datapoints share a minute, the later one is kept.
    order = np.argsort(times, kind="stable")
    times, raw = times[order], raw[order]
    index = (times - first.timestamp()) // MINUTE
    keep = (times + spec.period_s <= stop.timestamp()) & (index >= 0) & (index < length)
    slots, kept = index[keep].astype(np.intp), raw[keep]
    last = np.append(slots[1:] != slots[:-1], True) if slots.size else slots.astype(bool)
    values[slots[last]] = kept[last] * spec.scale
    return values


def evenly_spaced(stamps: list[datetime], period_s: int) -> tuple[float, bool] | None:
    """(the oldest datapoint's Unix seconds, whether they ascend) when the datapoints are one a
    period with none missing, else None.

    CloudWatch answers one datapoint a period, newest first: when the times run strictly one
    way and the first and last lie exactly (count - 1) periods apart, every period between is
    filled and the times are arithmetic. Checking that compares neighbours (no time zone is
    consulted for two times in one zone); converting each time would ask botocore's zone
    (dateutil's tzlocal) for its offset once a datapoint, most of a window's cost to place.
    """
    count = len(stamps)
    if count < 3:
        return None
    first, last = stamps[0].timestamp(), stamps[-1].timestamp()
    ascending = last > first
    if abs(last - first) != (count - 1) * period_s:
        return None
    if not all(map(operator.lt if ascending else operator.gt, stamps, stamps[1:])):
        return None
    return min(first, last), ascending


def place_evenly(
    values: Series, raw: Series, offset_s: float, spec: MetricSpec, *, complete_until: float
) -> None:
    """Datapoint k (oldest first, `offset_s` + k periods from the grid's start) into its minute.

    Every period is a whole number of minutes, so the minutes are a slice with that step:
    the kept datapoints are those inside the grid whose period ends by `complete_until`
    (seconds after the oldest datapoint). The same minutes and values as `place`'s general
    path, with three numpy calls instead of a dozen.
    """
    step = spec.period_s // MINUTE
    first_slot = offset_s // MINUTE  # the oldest datapoint's minute (may be before the grid)
    lo = max(0, math.ceil(-first_slot / step))
    hi = min(
        len(raw),
        math.ceil((len(values) - first_slot) / step),
        math.floor(complete_until / spec.period_s),  # datapoint k ends at (k + 1) periods
    )
    if lo < hi:
        start = int(first_slot) + lo * step
        values[start : start + (hi - lo - 1) * step + 1 : step] = raw[lo:hi] * spec.scale


def per_instance(values: Series, instances: Series | None) -> Series:
    """Fleet values divided by in-service instances; NaN where the count is unknown or zero."""
    if instances is None:
        return np.full(values.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = values / np.where(instances > 0, instances, np.nan)
    return np.asarray(out, dtype=np.float64)
