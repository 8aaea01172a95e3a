"""The EBS burst bucket of "up to" instance types: capacity, time to empty, time to refill.

AWS publishes no bucket size. It says an "up to" type "can support its maximum performance
for 30 minutes at least once every 24 hours". Read as a token bucket whose baseline is
always free, the bucket holds what 30 minutes at the maximum draws above the baseline:

    capacity          = (maximum - baseline) * 30 min                  (MB, or I/O operations)
    minutes_to_empty  = capacity * balance / (usage - baseline) / 60   while usage > baseline
    after it empties  = each instance sustains `baseline`

m5.xlarge: (593.75 - 143.75) MB/s * 1800 s = 810,000 MB; at 325 MB/s a full bucket lasts
810,000 / 181.25 / 60 = 74.5 minutes; at 143.75 MB/s or less it never empties.

A new instance starts with a full bucket, which is why replacing instances seems to fix an
I/O-bound fleet for a while: each fresh instance bursts again until its own bucket is empty.

The refill rate is the model's assumption (unused baseline flows back in); AWS guarantees only
the 30 minutes once a day, so a refill estimate is a best case.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scaler.instances.catalog import InstanceFacts
from scaler.signals import Series

__all__ = [
    "BURST_MINUTES",
    "FRESH_INSTANCE_NOTE",
    "Bucket",
    "bytes_per_min_to_mb_s",
    "ops_per_min_to_iops",
]

BURST_MINUTES = 30.0  # "maximum performance for 30 minutes at least once every 24 hours"
_BYTES_PER_MB = 1_000_000
_SECONDS = 60.0

FRESH_INSTANCE_NOTE = (
    "a new instance starts with a full EBS burst bucket, so replacing instances seems to fix "
    "the problem for a while: each fresh instance bursts again until its own bucket runs out"
)


def bytes_per_min_to_mb_s(values: Series) -> Series:
    """EBS bytes per minute (the ebs_*_bytes unit) as decimal MB/s (AWS's unit)."""
    return values / _BYTES_PER_MB / _SECONDS


def ops_per_min_to_iops(values: Series) -> Series:
    """EBS operations per minute (the ebs_*_ops unit) as operations per second."""
    return values / _SECONDS


class Bucket(BaseModel):
    """One instance's EBS burst bucket for throughput (MB/s) or for IOPS (ops/s)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline: float = Field(ge=0, description="Sustained rate, per second.")
    maximum: float = Field(ge=0, description="Burst rate, per second (= baseline: no burst).")
    burst_minutes: float = Field(
        BURST_MINUTES, gt=0, description="Minutes a full bucket lasts at the maximum."
    )

    @classmethod
    def throughput(cls, facts: InstanceFacts, burst_minutes: float = BURST_MINUTES) -> Bucket:
        """The type's throughput bucket, in MB and MB/s."""
        return cls(
            baseline=facts.ebs_baseline_mb_s,
            maximum=max(facts.ebs_max_mb_s, facts.ebs_baseline_mb_s),
            burst_minutes=burst_minutes,
        )

    @classmethod
    def iops(cls, facts: InstanceFacts, burst_minutes: float = BURST_MINUTES) -> Bucket:
        """The type's IOPS bucket, in operations and operations per second."""
        return cls(
            baseline=float(facts.ebs_baseline_iops),
            maximum=float(max(facts.ebs_max_iops, facts.ebs_baseline_iops)),
            burst_minutes=burst_minutes,
        )

    @property
    def bursts(self) -> bool:
        """Whether there is a bucket at all (the type's maximum exceeds its baseline)."""
        return self.maximum > self.baseline

    @property
    def capacity(self) -> float:
        """What a full bucket holds above the baseline (MB or operations)."""
        return (self.maximum - self.baseline) * self.burst_minutes * _SECONDS

    def sustained_after(self, usage: float) -> float:
        """The rate each instance gets once the bucket is empty: usage, capped at baseline."""
        return min(usage, self.baseline)

    def minutes_to_empty(self, usage: float, balance: float = 1.0) -> float:
        """Minutes until a bucket `balance` full (0..1) runs out at `usage`; inf if never."""
        return float(self.minutes_to_empty_series(np.array([usage]), np.array([balance]))[0])

    def minutes_to_empty_series(self, usage: Series, balance: Series) -> Series:
        """minutes_to_empty per minute of a window; NaN where usage or balance is missing."""
        drawn = np.minimum(usage, self.maximum) - self.baseline
        left = np.clip(balance, 0.0, 1.0) * self.capacity
        with np.errstate(divide="ignore", invalid="ignore"):
            minutes = np.where(drawn > 0, left / drawn / _SECONDS, np.inf)
        return np.where(np.isnan(usage) | np.isnan(balance), np.nan, minutes)

    def minutes_to_refill(self, usage: float, balance: float) -> float:
        """Best-case minutes until the bucket is full again at `usage`; inf if it never refills."""
        spare = self.baseline - usage
        missing = (1.0 - min(max(balance, 0.0), 1.0)) * self.capacity
        if missing <= 0:
            return 0.0
        return missing / spare / _SECONDS if spare > 0 else math.inf

    def estimate_balance(
        self,
        usage: Series,
        measured_pct: Series | None = None,
        *,
        start: float = 1.0,
    ) -> Series:
        """The bucket's fill (0..1) at the end of each minute, from usage per minute.

        Where `measured_pct` (EBSByteBalance% or EBSIOBalance%, 5-minute data) has a value,
        the estimate is reset to it; between those minutes it follows the usage. Without any
        measurement it starts from `start` (1.0: a fresh instance). A minute without usage
        holds the estimate (no data is not idle, so it is not read as a refill).
        """
        if not self.bursts:
            return np.where(np.isnan(usage), np.nan, 1.0)
        net = np.where(np.isnan(usage), 0.0, self.baseline - np.minimum(usage, self.maximum))
        step = net * _SECONDS / self.capacity
        anchors = (
            np.clip(measured_pct / 100.0, 0.0, 1.0)
            if measured_pct is not None
            else np.full(len(usage), np.nan)
        )
        out = anchors.tolist()
        level = min(max(start, 0.0), 1.0)
        # A clamped running sum (the bucket is never below empty nor above full) has no numpy
        # closed form with both bounds; the loop is one add per minute, on Python floats
        # (indexing numpy scalars one at a time costs several times more), with comparisons
        # rather than min/max calls (a 30-day replay runs it 86,400 times).
        measured = (~np.isnan(anchors)).tolist()
        for i, change in enumerate(step.tolist()):
            if measured[i]:
                level = out[i]
                continue
            level += change
            if level > 1.0:
                level = 1.0
            elif level < 0.0:
                level = 0.0
            out[i] = level
        return np.array(out, dtype=np.float64)
