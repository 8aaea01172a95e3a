"""A per-minute model of N instances draining one SQS queue, with EBS burst buckets.

The EBS bucket follows the EC2 user guide for "up to" instance types: an instance may run at its
maximum EBS throughput while its bucket holds credits; the bucket holds 30 minutes of
(maximum - baseline); it drains at (usage - baseline) and refills at (baseline - usage); when it
is empty the instance is held at its baseline. New instances start with a full bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from scaler.instances.catalog import InstanceFacts
from scaler.signals import Series, Signal, Window

__all__ = ["BURST_SECONDS", "FleetModel", "Trace", "bucket_capacity_mb", "simulate"]

BURST_SECONDS = 30 * 60


def bucket_capacity_mb(facts: InstanceFacts) -> float:
    """MB of credit a full bucket holds: 30 minutes at maximum above baseline."""
    return (facts.ebs_max_mb_s - facts.ebs_baseline_mb_s) * BURST_SECONDS


class FleetModel(BaseModel):
    """What one message costs and how noisy the measurements are."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    instance: InstanceFacts
    cpu_s_per_msg: float = Field(0.24, gt=0)
    mb_per_msg: float = Field(40.0, ge=0)
    write_share: float = Field(0.1, ge=0, le=1, description="Share of EBS bytes that are writes.")
    kb_per_op: float = Field(256.0, gt=0)
    concurrency_per_vcpu: int = Field(2, ge=1)
    iowait_floor_pct: float = 2.0
    mem_used_pct: float = 42.0
    noise: float = Field(0.02, ge=0, description="Relative noise on measured rates.")
    seed: int = 7


class Trace(BaseModel):
    """A simulated window plus what really happened, for tests to check detectors against."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    window: Window
    throttle_onset: datetime | None = None
    description: str = ""


def simulate(
    model: FleetModel,
    arrivals: Sequence[float] | Series,
    instances: Sequence[int] | Series,
    *,
    start: datetime,
    group: str = "default",
    extra_io_mb_s: Sequence[float] | Series | None = None,
    description: str = "",
) -> Trace:
    """Run the model minute by minute; `extra_io_mb_s` is other disk work (a backup job)."""
    f = model.instance
    n = len(arrivals)
    arr = np.asarray(arrivals, dtype=float)
    fleet = np.asarray(instances, dtype=float)
    extra = np.zeros(n) if extra_io_mb_s is None else np.asarray(extra_io_mb_s, dtype=float)
    capacity_mb = bucket_capacity_mb(f)
    base_mb_min, max_mb_min = f.ebs_baseline_mb_s * 60, f.ebs_max_mb_s * 60
    cpu_cap = f.vcpus * 60 / model.cpu_s_per_msg
    state = {
        k: np.zeros(n) for k in ("done", "backlog", "size", "used_mb", "disk_mb", "balance", "cap")
    }
    limited = np.zeros(n, dtype=bool)
    bucket, backlog, onset = capacity_mb, 0.0, None
    prev_n = fleet[0]
    for t in range(
        n
    ):  # The bucket is a state machine: this loop is the model's one sequential part.
        size = max(fleet[t], 1.0)
        if size > prev_n:  # New instances arrive with full buckets.
            bucket = (bucket * prev_n + capacity_mb * (size - prev_n)) / size
        prev_n = size
        disk_mb = min(max_mb_min, base_mb_min + bucket)
        work_disk = max(disk_mb - extra[t] * 60, 0.0)
        disk_cap = work_disk / model.mb_per_msg if model.mb_per_msg else np.inf
        cap = min(cpu_cap, disk_cap)
        demand = arr[t] + backlog
        done = min(demand, cap * size)
        backlog = demand - done
        used_mb = done / size * model.mb_per_msg + extra[t] * 60
        bucket = min(max(bucket - (used_mb - base_mb_min), 0.0), capacity_mb)
        limited[t] = disk_cap < cpu_cap and done < demand
        if onset is None and limited[t] and disk_mb < max_mb_min - 1e-6:
            onset = t
        for key, value in (
            ("done", done),
            ("backlog", backlog),
            ("size", size),
            ("used_mb", used_mb),
            ("disk_mb", disk_mb),
            ("balance", bucket / capacity_mb),
            ("cap", cap * size),
        ):
            state[key][t] = value
    window = Window(group=group, start=start, length=n, series=_measure(model, arr, state, limited))
    onset_time = None if onset is None else window.time_at(onset)
    return Trace(window=window, throttle_onset=onset_time, description=description)


_SIGNALS = [s.value for s in Signal if s is not Signal.WORK_LATENCY]


def _measure(
    m: FleetModel, arrivals: Series, st: dict[str, Series], limited: npt.NDArray[np.bool_]
) -> dict[str, Series]:
    """What CloudWatch would report for the model's state, with noise where real metrics have it."""
    f, n = m.instance, len(arrivals)
    rng = np.random.default_rng(m.seed)

    def noisy(x: Series) -> Series:
        return np.maximum(x * (1 + rng.normal(0, m.noise, n)), 0.0)

    done_pi = st["done"] / st["size"]
    cpu = done_pi * m.cpu_s_per_msg / (f.vcpus * 60) * 100
    util = np.minimum(st["used_mb"] / np.maximum(st["disk_mb"], 1e-9), 1.0)
    iowait = m.iowait_floor_pct + (100 - cpu) * 0.6 * util
    workers = f.vcpus * m.concurrency_per_vcpu * st["size"]
    mb, ops = st["used_mb"] * 1e6, st["used_mb"] * 1000 / m.kb_per_op
    # A throttled disk serves a flat, constant amount: no noise while held at the limit.
    jitter = np.where(limited, 1.0, 1 + rng.normal(0, m.noise / 2, n))
    every_fifth = np.arange(n) % 5 == 0  # AWS publishes the balance metrics as 5-minute data.
    return {
        "queue_sent": np.round(noisy(arrivals)),
        "queue_deleted": np.round(noisy(st["done"])),
        "queue_visible": np.round(st["backlog"]),
        "queue_in_flight": np.round(
            workers * np.minimum(st["done"] / np.maximum(st["cap"], 1e-9), 1.0)
        ),
        "queue_oldest_age": np.round(
            st["backlog"] / np.maximum(st["done"], 1.0) * 60 + 5 * rng.random(n)
        ),
        "instances": st["size"],
        "cpu_user": _percent(cpu + rng.normal(0, 1.0, n)),
        "cpu_iowait": _percent(iowait + rng.normal(0, 1.5, n)),
        "ebs_read_bytes": np.round(mb * (1 - m.write_share) * jitter),
        "ebs_write_bytes": np.round(mb * m.write_share * jitter),
        "ebs_read_ops": np.round(ops * (1 - m.write_share) * jitter),
        "ebs_write_ops": np.round(ops * m.write_share * jitter),
        "ebs_byte_balance": np.where(every_fifth, np.round(st["balance"] * 100, 2), np.nan),
        "ebs_io_balance": np.where(every_fifth, 100.0, np.nan),
        "ebs_throughput_exceeded": limited.astype(np.float64),
        "ebs_iops_exceeded": np.zeros(n),
        "mem_used": np.round(m.mem_used_pct + rng.normal(0, 1.0, n), 2),
    }


def _percent(values: Series) -> Series:
    """Clipped to [0, 100] and rounded to 0.01, as the agent reports percentages."""
    return np.asarray(np.round(np.clip(values, 0.0, 100.0), 2), dtype=np.float64)
