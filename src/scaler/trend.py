"""Robust trends: Theil–Sen fits on per-interval summaries, vectorized over evaluation points.

Memory under a garbage-collection saw-tooth and latency under noise both fool a least-squares
line (one spike bends it) and a two-point difference (it measures the noise). Summarizing each
interval first (its minimum for memory, the floor a leak lifts; its median for latency) and
taking the median of all pairwise slopes (Theil–Sen) gives a slope that tolerates ~29% of bad
points. The share of pairwise slopes that agree in sign is the confidence figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from scaler.signals import Series

__all__ = ["BucketFits", "bucket", "fit_buckets", "theil_sen"]


def bucket(values: Series, minutes: int, how: str) -> Series:
    """Summaries of consecutive `minutes`-long intervals ('min' or 'median'), NaN if all missing.

    The last, partial interval is dropped, so a summary only ever covers complete intervals.
    """
    whole = len(values) // minutes
    if whole == 0:
        return np.empty(0)
    blocks = values[: whole * minutes].reshape(whole, minutes)
    present = ~np.isnan(blocks).all(axis=1)
    out = np.full(whole, np.nan)
    if present.any():
        reduce = np.nanmin if how == "min" else np.nanmedian
        out[present] = reduce(blocks[present], axis=1)
    return out


def theil_sen(x: Series, y: Series) -> tuple[float, float, float]:
    """(slope, intercept, confidence) of the Theil–Sen fit over the present points."""
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return np.nan, np.nan, 0.0
    i, j = np.triu_indices(len(x), k=1)
    slopes = (y[j] - y[i]) / (x[j] - x[i])
    slope = float(np.median(slopes))
    intercept = float(np.median(y - slope * x))
    agree = float(np.mean(np.sign(slopes) == np.sign(slope))) if slope else 0.0
    return slope, intercept, agree


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


def fit_buckets(buckets: Series, count: int, min_present: int) -> BucketFits:
    """Fit every trailing run of `count` buckets at once (rows of a sliding window)."""
    if not len(buckets):  # a window shorter than one bucket: nothing to fit
        none = np.zeros(0, dtype=np.int64)
        return BucketFits(none, np.zeros(0), np.zeros(0), np.zeros(0), none)
    padded = np.concatenate((np.full(count - 1, np.nan), buckets))
    rows = sliding_window_view(padded, count)
    i, j = np.triu_indices(count, k=1)
    with np.errstate(invalid="ignore"):
        slopes = (rows[:, j] - rows[:, i]) / (j - i)
    present_mask = ~np.isnan(rows)
    present = present_mask.sum(axis=1)
    usable = present >= max(min_present, 3)
    slope = np.full(len(rows), np.nan)
    intercept = np.full(len(rows), np.nan)
    confidence = np.zeros(len(rows))
    if usable.any():
        s = np.nanmedian(slopes[usable], axis=1)
        slope[usable] = s
        x = np.arange(count)
        intercept[usable] = np.nanmedian(rows[usable] - s[:, None] * x, axis=1)
        valid = ~np.isnan(slopes[usable])
        agree = (np.sign(slopes[usable]) == np.sign(s)[:, None]) & valid
        confidence[usable] = np.where(
            s != 0, agree.sum(axis=1) / np.maximum(valid.sum(axis=1), 1), 0
        )
    end = np.arange(1, len(buckets) + 1, dtype=np.int64)
    first_x = np.argmax(present_mask, axis=1).astype(np.int64)
    return BucketFits(end, slope, intercept, confidence, first_x)
