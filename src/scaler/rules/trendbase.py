"""Turning trailing trend fits into a causal per-minute mask, for the trend detectors."""

from __future__ import annotations

import numpy as np

from scaler.numeric import Mask
from scaler.trend import BucketFits

__all__ = ["fit_minute", "latest_fit", "mask_from_fits"]


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
