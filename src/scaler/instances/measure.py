"""The demand the ranking needs, measured from the last minutes of a window."""

from __future__ import annotations

import numpy as np

from scaler.instances.alternatives import Demand
from scaler.instances.burst import bytes_per_min_to_mb_s, ops_per_min_to_iops
from scaler.instances.catalog import InstanceFacts
from scaler.numeric import rolling_mean
from scaler.signals import EBS_BYTES, EBS_OPS, Signal, Window

__all__ = ["DEMAND_TOTALS", "demand_from_window", "peak_ebs_mb_s", "volume_plateau_mb_s"]

#: The per-minute sums demand is measured from. A caller that measures many slices of one
#: window (a backtest's timeline) makes them on the whole window first: each slice then takes
#: its share (`Window.slice`) instead of summing its own.
DEMAND_TOTALS: tuple[tuple[Signal, ...], ...] = (
    (Signal.QUEUE_DELETED,),
    (Signal.INSTANCES,),
    (Signal.QUEUE_SENT,),
    tuple(EBS_BYTES),
    tuple(EBS_OPS),
    (Signal.CPU_USER,),
    (Signal.MEM_USED,),
)
_FLAT_CV = 0.05  # a throughput whose spread is under 5% of its mean is a plateau
_BELOW_BASELINE = 0.9  # ...and one under 90% of the instance baseline is not the instance's


def _mean(window: Window, minutes: int, *signals: Signal) -> float | None:
    """Mean over the last `minutes` of the per-minute sum of `signals`; None if none reported."""
    total = window.total(signals)
    if total is None:
        return None
    tail = total[-minutes:] if minutes > 0 else total[:0]
    present = tail[~np.isnan(tail)]
    # What present.mean() computes (a sum, then one division), without its Python wrapper.
    return float(np.add.reduce(present)) / len(present) if len(present) else None


def demand_from_window(window: Window, current: InstanceFacts, minutes: int = 15) -> Demand | None:
    """Arrivals and per-message costs over the last `minutes`; None without queue or fleet data.

    Per-instance throughput is queue_deleted / instances; EBS, CPU and memory signals are
    already per instance. A signal the source lacks leaves its per-message cost unknown.
    The tail is read as array slices of the window's (memoized) totals, not as a window of its
    own: a backtest's timeline measures demand at every minute that proposes a type.
    """
    deleted = _mean(window, minutes, *DEMAND_TOTALS[0])
    instances = _mean(window, minutes, *DEMAND_TOTALS[1])
    arrivals = _mean(window, minutes, *DEMAND_TOTALS[2])
    if not deleted or not instances or not arrivals:
        return None
    bytes_per_min = _mean(window, minutes, *DEMAND_TOTALS[3])
    ops_per_min = _mean(window, minutes, *DEMAND_TOTALS[4])
    demand = Demand.measured(
        current,
        arrivals_per_min=arrivals,
        msgs_per_min=deleted / instances,
        ebs_mb_s=float(bytes_per_min_to_mb_s(np.array([bytes_per_min or 0.0]))[0]),
        ebs_iops=float(ops_per_min_to_iops(np.array([ops_per_min or 0.0]))[0]),
        cpu_pct=_mean(window, minutes, *DEMAND_TOTALS[5]),
        mem_used_pct=_mean(window, minutes, *DEMAND_TOTALS[6]),
        volume_mb_s=volume_plateau_mb_s(window, current, minutes),
    )
    peak = peak_ebs_mb_s(window, minutes)
    if peak is not None and peak > demand.ebs_mb_s:
        demand = demand.model_copy(update={"peak_mb_s": peak})
    return demand


def peak_ebs_mb_s(window: Window, minutes: int) -> float | None:
    """The highest `minutes`-long mean of per-instance EBS MB/s: what the work drove unthrottled."""
    used = window.total(EBS_BYTES)
    if used is None:
        return None
    smoothed = rolling_mean(used, minutes)
    finite = smoothed[np.isfinite(smoothed)]
    return float(bytes_per_min_to_mb_s(np.array([finite.max()]))[0]) if finite.size else None


def volume_plateau_mb_s(
    window: Window, current: InstanceFacts, minutes: int | None = None
) -> float | None:
    """The flat EBS throughput of a volume-limited fleet over the last `minutes` (default: the
    whole window), or None when that is not shown.

    Volume-limited: throughput flat, clearly below the instance's baseline, and the instance
    never reported exceeding its own EBS limit (InstanceEBSThroughputExceededCheck all 0).
    Without that check signal there is no telling, so no guess.
    """
    first = 0 if minutes is None else max(window.length - minutes, 0)
    exceeded = window.get(Signal.EBS_THROUGHPUT_EXCEEDED.value)
    used = window.total(EBS_BYTES)
    if exceeded is not None:
        exceeded = exceeded[first:]
    if used is not None:
        used = used[first:]
    if exceeded is None or np.isnan(exceeded).all() or np.nanmax(exceeded) > 0 or used is None:
        return None
    mb_s = bytes_per_min_to_mb_s(used)
    mb_s = mb_s[~np.isnan(mb_s)]
    if len(mb_s) < 2:
        return None
    mean = float(mb_s.mean())
    flat = mean > 0 and float(mb_s.std()) <= _FLAT_CV * mean
    return round(mean, 2) if flat and mean < _BELOW_BASELINE * current.ebs_baseline_mb_s else None
