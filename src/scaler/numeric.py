"""Causal, NaN-aware series arithmetic shared by detectors and capacity (numpy, no loops)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

__all__ = [
    "Mask",
    "Series",
    "ffill",
    "lagged",
    "nanmedian_rows",
    "rolling_max",
    "rolling_mean",
    "rolling_median",
    "rolling_min",
    "rolling_sum",
    "run_lengths",
    "runs",
    "sustained",
    "trailing_view",
]

#: One value a minute, NaN where missing (re-exported by `scaler.signals`, where most code
#: takes it from; defined here, below it, so the arithmetic needs nothing of the vocabulary).
Series = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
_Item = TypeVar("_Item", bound=np.generic)


def rolling_sum(values: Series, width: int, min_count: int = 1) -> tuple[Series, Series]:
    """Trailing sums over `width` minutes ending at each minute, and how many were present.

    Differences of running sums; the window's first `width` minutes subtract nothing. Slices,
    not index arrays: a live tick calls this a dozen times a group on 180-minute series.
    """
    n, width = len(values), max(width, 0)
    missing = np.isnan(values)
    sums = np.cumsum(np.where(missing, 0.0, values))
    counts = np.cumsum(~missing, dtype=np.float64)
    if n > width:
        sums[width:] -= sums[: n - width].copy()
        counts[width:] -= counts[: n - width].copy()
    return np.where(counts >= min_count, sums, np.nan), counts


def rolling_mean(values: Series, width: int, min_count: int = 1) -> Series:
    """Trailing mean over `width` minutes, NaN where fewer than `min_count` were present."""
    sums, counts = rolling_sum(values, width, min_count)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.where(counts >= min_count, sums / np.maximum(counts, 1), np.nan)


def trailing_view(values: npt.NDArray[_Item], width: int) -> npt.NDArray[_Item]:
    """Read-only rows of `width` consecutive values, one row per position (no copy).

    What numpy's `sliding_window_view` returns for a 1-D array, without its argument checks,
    which cost more than the view itself on the short series of a live tick.
    """
    rows = max(len(values) - width + 1, 0)
    step = values.strides[0]
    view: npt.NDArray[_Item] = as_strided(
        values, shape=(rows, width), strides=(step, step), writeable=False
    )
    return view


def _rolling_reduce(values: Series, width: int, fill: float, reduce: str) -> Series:
    if len(values) == 0:
        return values.copy()
    padded = np.concatenate((np.full(width - 1, np.nan), values))
    view = trailing_view(padded, width)
    substituted = np.where(np.isnan(view), fill, view)
    out: Series = getattr(substituted, reduce)(axis=1)
    all_missing = np.isnan(view).all(axis=1)
    return np.where(all_missing, np.nan, out)


def nanmedian_rows(rows: npt.NDArray[np.float64]) -> Series:
    """Each row's median ignoring NaN (NaN for a row with none): `np.nanmedian(rows, axis=1)`.

    numpy's nanmedian goes through masked arrays for small rows, several times slower than
    one sort: sorting puts NaN last, so the median of a row's k present values sits at
    positions (k-1)//2 and k//2.
    """
    if rows.shape[0] == 0:
        return np.empty(0)
    ordered = np.sort(rows, axis=1)
    counts = rows.shape[1] - np.isnan(rows).sum(axis=1)
    at = np.arange(len(ordered))
    lo = ordered[at, np.maximum(counts - 1, 0) // 2]
    hi = ordered[at, np.minimum(counts // 2, rows.shape[1] - 1)]
    return np.where(counts > 0, (lo + hi) / 2, np.nan)


def rolling_median(values: Series, width: int) -> Series:
    """Trailing median over `width` minutes ignoring NaN: smooths noise but keeps edges sharp."""
    if len(values) == 0 or width <= 1:
        return values.copy()
    if width == 3:
        out = _median_of_three(values)
    else:
        padded = np.concatenate((np.full(width - 1, np.nan), values))
        out = nanmedian_rows(trailing_view(padded, width))
    out.flags.writeable = False  # smoothed series are shared between rules (Window.derived)
    return out


def _median_of_three(values: Series) -> Series:
    """The trailing 3-minute median ignoring NaN, as `nanmedian_rows` computes it (the rules'
    default smoothing): of three values the middle one; of two their mean; of one itself.

    Element-wise minima and maxima of the three shifted series instead of sorting rows: the
    same values, several times fewer operations on a live tick's short series.
    """
    a, b, c = lagged(values, 2), lagged(values, 1), values
    present = (~np.isnan(a)).astype(np.int8) + ~np.isnan(b) + ~np.isnan(c)
    middle = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    # fmin/fmax skip NaN: the lowest and highest present values ((x + x) / 2 is x for one)
    lo, hi = np.fmin(np.fmin(a, b), c), np.fmax(np.fmax(a, b), c)
    return np.where(present == 3, middle, (lo + hi) / 2)


def rolling_min(values: Series, width: int) -> Series:
    """Trailing minimum over `width` minutes, ignoring NaN (NaN if all missing)."""
    return _rolling_reduce(values, width, np.inf, "min")


def rolling_max(values: Series, width: int) -> Series:
    """Trailing maximum over `width` minutes, ignoring NaN (NaN if all missing)."""
    return _rolling_reduce(values, width, -np.inf, "max")


def lagged(values: Series, minutes: int) -> Series:
    """The series shifted `minutes` later (value at t is the value at t - minutes)."""
    out = np.full(len(values), np.nan)
    if minutes < len(values):
        out[minutes:] = values[: len(values) - minutes]
    return out


def ffill(values: Series, limit: int) -> Series:
    """Carry each value forward over at most `limit` missing minutes (for 5-minute data)."""
    missing = np.isnan(values)
    if not missing.any():
        return values.copy()  # the usual case: nothing to carry
    at = np.arange(len(values))
    last = np.maximum.accumulate(np.where(missing, -1, at))
    ok = (last >= 0) & (at - last <= limit)
    return np.where(ok, values[np.maximum(last, 0)], np.nan)


def runs(mask: Mask, min_length: int = 1) -> list[tuple[int, int]]:
    """Inclusive (first, last) index pairs of True runs at least `min_length` long."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if e - s + 1 >= min_length]


def run_lengths(mask: Mask) -> npt.NDArray[np.int64]:
    """How many consecutive minutes `mask` has been True, ending at each minute."""
    total = np.cumsum(mask, dtype=np.int64)
    at_reset = np.where(mask, 0, total)
    return total - np.maximum.accumulate(at_reset) if len(mask) else total


def sustained(mask: Mask, min_length: int) -> Mask:
    """Minutes at which `mask` has held for at least `min_length` consecutive minutes.

    Causal: minute t is True once the run covering it is `min_length` long *at t*, so a
    tick at t sees exactly what a backtest reports for t.
    """
    return run_lengths(mask) >= min_length
