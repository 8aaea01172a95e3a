"""Robust trends for the trend rules (`memory_leak`, `latency_growth`): one home for the fitting.

Memory under a garbage-collection saw-tooth and latency under noise both fool a least-squares
line (one spike bends it) and a two-point difference (it measures the noise). Summarizing each
interval first (its minimum for memory, the floor a leak lifts; its median for latency) and
taking the median of all pairwise slopes (Theil–Sen) gives a slope that tolerates ~29% of bad
points. The share of pairwise slopes that agree in sign is the confidence figure.

`TrendFit` is the scaffolding every trend rule shares: bucket -> fit every trailing run ->
a causal per-minute mask of where the rule's test holds -> the newest fit behind each span,
for the rule to describe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from scaler.models import EvidenceValue, Finding, Severity
from scaler.numeric import Mask, nanmedian_rows, trailing_view
from scaler.rules.features import spans_to_findings
from scaler.signals import Series, Window

__all__ = [
    "BucketFits",
    "FitSpan",
    "Summary",
    "TrendFit",
    "bucket",
    "fit_buckets",
    "fit_minute",
    "latest_fit",
    "mask_from_fits",
    "restarts",
]

Summary = Literal["min", "median", "max"]
_REDUCERS: dict[str, Callable[[npt.NDArray[np.float64]], Series]] = {
    "min": lambda rows: np.nanmin(rows, axis=1),
    "median": nanmedian_rows,
    "max": lambda rows: np.nanmax(rows, axis=1),
}


def bucket(values: Series, minutes: int, how: Summary) -> Series:
    """Summaries of consecutive `minutes`-long intervals ('min', 'median' or 'max').

    NaN where an interval has no data. The last, partial interval is dropped, so a summary
    only ever covers complete intervals.
    """
    if how not in _REDUCERS:
        raise ValueError(f"unknown bucket summary {how!r}; valid: {', '.join(_REDUCERS)}")
    whole = len(values) // minutes
    if whole == 0:
        return np.empty(0)
    blocks = values[: whole * minutes].reshape(whole, minutes)
    present = ~np.isnan(blocks).all(axis=1)
    out = np.full(whole, np.nan)
    if present.any():
        out[present] = _REDUCERS[how](blocks[present])
    return out


@dataclass(frozen=True)
class BucketFits:
    """Theil–Sen fits over the trailing `count` buckets, one per complete bucket.

    Row k ends at bucket `end[k]` (exclusive). Early rows look back past the start of the data
    and see missing buckets there, so a fit at bucket e is the same whatever came before the
    window: causal. Positions x run 0..count-1 within a row; `first_x` is the first present.
    """

    end: npt.NDArray[np.int64]
    slope: Series
    intercept: Series  # the fit's value at x = 0 of its row
    confidence: Series
    first_x: npt.NDArray[np.int64]

    def value_at(self, k: int, x: float) -> float:
        """The fitted value of row k at position x."""
        return float(self.intercept[k] + self.slope[k] * x)


def fit_buckets(
    buckets: Series,
    count: int,
    min_present: int,
    segments: npt.NDArray[np.int64] | None = None,
) -> BucketFits:
    """Fit every trailing run of `count` buckets at once (rows of a sliding window).

    With `segments` (a segment number per bucket, rising at each restart), only pairs within
    one segment count towards the slope, and the intercept is placed on the row's last
    segment: a saw-tooth that resets at restarts is measured on its climbing parts.
    """
    if len(buckets) == 0:  # a window shorter than one bucket: no fits, not an error
        empty = np.empty(0)
        return BucketFits(np.empty(0, np.int64), empty, empty, empty, np.empty(0, np.int64))
    # A row wider than the data starts with columns that are padding in every row: they are
    # left out (`shift` of them), and positions keep their place in the full row.
    width = min(count, len(buckets))
    shift = count - width
    padded = np.concatenate((np.full(width - 1, np.nan), buckets))
    rows = trailing_view(padded, width)
    i, j, gap = _pairs(width)
    with np.errstate(invalid="ignore"):
        slopes = (rows[:, j] - rows[:, i]) / gap
    on_last = np.ones(rows.shape, dtype=bool)
    if segments is not None:
        seg = trailing_view(
            np.concatenate((np.full(width - 1, segments[0] if len(segments) else 0), segments)),
            width,
        )
        slopes = np.where(seg[:, j] == seg[:, i], slopes, np.nan)
        on_last = seg == seg[:, -1:]
    present_mask = ~np.isnan(rows)
    present = present_mask.sum(axis=1)
    usable = (present >= max(min_present, 3)) & ~np.isnan(slopes).all(axis=1)
    slope = np.full(len(rows), np.nan)
    intercept = np.full(len(rows), np.nan)
    confidence = np.zeros(len(rows))
    if usable.any():
        s = nanmedian_rows(slopes[usable])
        slope[usable] = s
        x = np.arange(shift, count)
        placed = np.where(on_last[usable], rows[usable], np.nan) - s[:, None] * x
        fallback = rows[usable] - s[:, None] * x
        on_segment = nanmedian_rows(placed)  # NaN where the last segment has no data
        intercept[usable] = np.where(np.isnan(on_segment), nanmedian_rows(fallback), on_segment)
        valid = ~np.isnan(slopes[usable])
        agree = (np.sign(slopes[usable]) == np.sign(s)[:, None]) & valid
        confidence[usable] = np.where(
            s != 0, agree.sum(axis=1) / np.maximum(valid.sum(axis=1), 1), 0
        )
    end = np.arange(1, len(buckets) + 1, dtype=np.int64)
    first_present = present_mask & on_last
    first_x = np.where(
        first_present.any(axis=1), np.argmax(first_present, axis=1) + shift, 0
    ).astype(np.int64)
    return BucketFits(end, slope, intercept, confidence, first_x)


@functools.cache
def _pairs(width: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Column pairs (i < j) of a row `width` wide, and their distances j - i (made once)."""
    i, j = np.triu_indices(width, k=1)
    out = (i, j, j - i)
    for array in out:
        array.flags.writeable = False
    return out


def restarts(buckets: Series, drop: float) -> npt.NDArray[np.int64]:
    """Segment number per bucket, rising where the summary falls by more than `drop`."""
    if len(buckets) == 0:
        return np.zeros(0, dtype=np.int64)
    last_seen = buckets.copy()
    for k in range(1, len(last_seen)):  # carry the last present value over gaps
        if np.isnan(last_seen[k]):
            last_seen[k] = last_seen[k - 1]
    with np.errstate(invalid="ignore"):
        falls = np.concatenate(([False], np.diff(last_seen) < -drop))
    return np.cumsum(falls).astype(np.int64)


def _median_slope(x: Series, y: Series, seg: npt.NDArray[np.int64]) -> float:
    """Theil–Sen slope of the present points, pairs within one segment only (NaN if none)."""
    keep = ~np.isnan(y)
    x, y, seg = x[keep], y[keep], seg[keep]
    i, j = np.triu_indices(len(x), k=1)
    same = seg[i] == seg[j]
    if not same.any():
        return float("nan")
    return float(np.median((y[j] - y[i])[same] / (x[j] - x[i])[same]))


def fit_minute(fits: BucketFits, k: int, bucket_minutes: int) -> int:
    """The minute at which fit `k` becomes known: the last minute of its last bucket."""
    return int(fits.end[k]) * bucket_minutes - 1


def mask_from_fits(fits: BucketFits, holds: Mask, bucket_minutes: int, length: int) -> Mask:
    """Minutes at which the latest known fit says the state holds (until the next fit)."""
    active = np.zeros(length, dtype=bool)
    for k in map(int, np.flatnonzero(holds)):
        first = fit_minute(fits, k, bucket_minutes)
        last = fit_minute(fits, k + 1, bucket_minutes) if k + 1 < len(fits.end) else length
        active[first : min(last, length)] = True
    return active


def latest_fit(fits: BucketFits, minute: int, bucket_minutes: int) -> int | None:
    """Index of the newest fit known at `minute`, or None."""
    known = np.flatnonzero(fits.end * bucket_minutes - 1 <= minute)
    return int(known[-1]) if len(known) else None


@dataclass(frozen=True)
class FitSpan:
    """The newest fit behind a span of findings, and the data it was fitted on."""

    k: int
    stop: int  # the fit's last bucket (exclusive)
    n: int  # buckets of real data in the fit
    fitted_from: datetime
    fitted_to: datetime
    first: float  # the fitted value at the first bucket with data
    last: float  # the fitted value at the last bucket
    confidence: float
    buckets: Series  # the bucket summaries the fit saw, from its first present one


Describe = Callable[[FitSpan, int, int], tuple[Severity, str, dict[str, EvidenceValue]]]


@dataclass(frozen=True)
class TrendFit:
    """One signal bucketed and fitted at every complete bucket of a window."""

    window: Window
    buckets: Series
    fits: BucketFits
    bucket_minutes: int
    count: int
    segments: npt.NDArray[np.int64]

    @classmethod
    def of(
        cls,
        window: Window,
        values: Series,
        *,
        bucket_minutes: int,
        how: Summary,
        window_minutes: int,
        min_window_minutes: int,
        restart_drop: float | None = None,
    ) -> TrendFit:
        """Bucket `values` and fit the trailing `window_minutes` at every bucket.

        With `restart_drop`, a fall of a bucket summary by more than that starts a new
        segment (a restart), and fits measure the climbing segments between restarts.
        """
        buckets = bucket(values, bucket_minutes, how)
        count = max(window_minutes // bucket_minutes, 3)
        segments = (
            restarts(buckets, restart_drop)
            if restart_drop is not None
            else np.zeros(len(buckets), dtype=np.int64)
        )
        fits = fit_buckets(
            buckets,
            count,
            min_window_minutes // bucket_minutes,
            segments if restart_drop is not None else None,
        )
        return cls(window, buckets, fits, bucket_minutes, count, segments)

    def half_slopes(self, k: int) -> tuple[float, float]:
        """Slopes of the first and second half of fit k's data (a step climbs in one only)."""
        stop = int(self.fits.end[k])
        start = max(stop - self.count, 0)
        y, seg = self.buckets[start:stop], self.segments[start:stop]
        present = np.flatnonzero(~np.isnan(y))
        if len(present) < 4:
            return float("nan"), float("nan")
        first, last = int(present[0]), int(present[-1])
        middle = (first + last + 1) // 2
        x = np.arange(len(y), dtype=np.float64)
        return (
            _median_slope(x[first:middle], y[first:middle], seg[first:middle]),
            _median_slope(x[middle : last + 1], y[middle : last + 1], seg[middle : last + 1]),
        )

    @property
    def first(self) -> Series:
        """Each fit's value at its first bucket with data."""
        return self.fits.intercept + self.fits.slope * self.fits.first_x

    @property
    def last(self) -> Series:
        """Each fit's value at its last bucket."""
        return self.fits.intercept + self.fits.slope * (self.count - 1)

    @property
    def per_hour(self) -> Series:
        """Each fit's slope in units per hour."""
        return self.fits.slope * 60 / self.bucket_minutes

    def span(self, minute: int) -> FitSpan:
        """The newest fit known at `minute` (a minute the rule's mask marks active)."""
        k = latest_fit(self.fits, minute, self.bucket_minutes)
        assert k is not None  # active minutes always follow a fit
        b = self.bucket_minutes
        stop, n = int(self.fits.end[k]), self.count - int(self.fits.first_x[k])
        return FitSpan(
            k=k,
            stop=stop,
            n=n,
            fitted_from=self.window.time_at((stop - n) * b),
            fitted_to=self.window.time_at(stop * b - 1),
            first=float(self.first[k]),
            last=float(self.last[k]),
            confidence=float(self.fits.confidence[k]),
            buckets=self.buckets[stop - n : stop],
        )

    def findings(self, kind: str, holds: Mask, describe: Describe) -> tuple[list[Finding], Mask]:
        """Findings where `holds` (one flag per fit) is true, each described from its fit."""
        active = mask_from_fits(self.fits, holds, self.bucket_minutes, self.window.length)

        def described(first: int, last: int) -> tuple[Severity, str, dict[str, EvidenceValue]]:
            return describe(self.span(last), first, last)

        return spans_to_findings(self.window, kind, active, 1, described), active
