"""The demand the ranking needs, measured from the last minutes of a window."""

from __future__ import annotations

import numpy as np

from scaler.instances.alternatives import Demand
from scaler.instances.burst import bytes_per_min_to_mb_s, ops_per_min_to_iops
from scaler.instances.catalog import InstanceFacts
from scaler.numeric import rolling_mean
from scaler.signals import Series, Signal, Window

__all__ = ["demand_from_window", "peak_ebs_mb_s", "volume_plateau_mb_s"]

_FLAT_CV = 0.05  # a throughput whose spread is under 5% of its mean is a plateau
_BELOW_BASELINE = 0.9  # ...and one under 90% of the instance baseline is not the instance's


def _mean(window: Window, *signals: Signal) -> float | None:
    """Mean of the per-minute sum of `signals` over the window; None if none was reported."""
    parts = [window.series[s.value] for s in signals if s.value in window.series]
    if not parts:
        return None
    total: Series = np.sum(parts, axis=0)
    present = total[~np.isnan(total)]
    return float(present.mean()) if len(present) else None


def demand_from_window(window: Window, current: InstanceFacts, minutes: int = 15) -> Demand | None:
    """Arrivals and per-message costs over the last `minutes`; None without queue or fleet data.

    Per-instance throughput is queue_deleted / instances; EBS, CPU and memory signals are
    already per instance. A signal the source lacks leaves its per-message cost unknown.
    """
    tail = window.tail(minutes)
    deleted = _mean(tail, Signal.QUEUE_DELETED)
    instances = _mean(tail, Signal.INSTANCES)
    arrivals = _mean(tail, Signal.QUEUE_SENT)
    if not deleted or not instances or not arrivals:
        return None
    bytes_per_min = _mean(tail, Signal.EBS_READ_BYTES, Signal.EBS_WRITE_BYTES)
    ops_per_min = _mean(tail, Signal.EBS_READ_OPS, Signal.EBS_WRITE_OPS)
    demand = Demand.measured(
        current,
        arrivals_per_min=arrivals,
        msgs_per_min=deleted / instances,
        ebs_mb_s=float(bytes_per_min_to_mb_s(np.array([bytes_per_min or 0.0]))[0]),
        ebs_iops=float(ops_per_min_to_iops(np.array([ops_per_min or 0.0]))[0]),
        cpu_pct=_mean(tail, Signal.CPU_USER),
        mem_used_pct=_mean(tail, Signal.MEM_USED),
        volume_mb_s=volume_plateau_mb_s(tail, current),
    )
    peak = peak_ebs_mb_s(window, minutes)
    if peak is not None and peak > demand.ebs_mb_s:
        demand = demand.model_copy(update={"peak_mb_s": peak})
    return demand


def peak_ebs_mb_s(window: Window, minutes: int) -> float | None:
    """The highest `minutes`-long mean of per-instance EBS MB/s: what the work drove unthrottled."""
    parts = [
        window.series[s.value]
        for s in (Signal.EBS_READ_BYTES, Signal.EBS_WRITE_BYTES)
        if s.value in window.series
    ]
    if not parts:
        return None
    smoothed = rolling_mean(np.sum(parts, axis=0), minutes)
    finite = smoothed[np.isfinite(smoothed)]
    return float(bytes_per_min_to_mb_s(np.array([finite.max()]))[0]) if finite.size else None


def volume_plateau_mb_s(window: Window, current: InstanceFacts) -> float | None:
    """The flat EBS throughput of a volume-limited fleet, or None when that is not shown.

    Volume-limited: throughput flat, clearly below the instance's baseline, and the instance
    never reported exceeding its own EBS limit (InstanceEBSThroughputExceededCheck all 0).
    Without that check signal there is no telling, so no guess.
    """
    exceeded = window.get(Signal.EBS_THROUGHPUT_EXCEEDED.value)
    parts = [window.series[s] for s in ("ebs_read_bytes", "ebs_write_bytes") if s in window.series]
    if exceeded is None or np.isnan(exceeded).all() or np.nanmax(exceeded) > 0 or not parts:
        return None
    mb_s = bytes_per_min_to_mb_s(np.sum(parts, axis=0))
    mb_s = mb_s[~np.isnan(mb_s)]
    if len(mb_s) < 2:
        return None
    mean = float(mb_s.mean())
    flat = mean > 0 and float(mb_s.std()) <= _FLAT_CV * mean
    return round(mean, 2) if flat and mean < _BELOW_BASELINE * current.ebs_baseline_mb_s else None
