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
from pydantic import BaseModel, ConfigDict, Field

from scaler.instances.catalog import InstanceFacts
from scaler.signals import Series, Signal, Window

__all__ = [
    "BURST_SECONDS",
    "NOISE_KEYS",
    "FleetModel",
    "Trace",
    "bucket_capacity_mb",
    "cpu_pct",
    "draw_noise",
    "measure",
    "measured_cpu",
    "simulate",
]

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
    state["arrivals"], state["limited"] = arr, limited.astype(np.float64)
    state["visible"], state["oldest_age"] = state["backlog"], _age_estimate(state)
    state["cpu_pct"] = cpu_pct(state["done"] / state["size"], model.cpu_s_per_msg, f.vcpus)
    workers = f.vcpus * model.concurrency_per_vcpu * state["size"]
    state["in_flight"] = workers * np.minimum(state["done"] / np.maximum(state["cap"], 1e-9), 1.0)
    series = measure(model, state, draw_noise(model, n))
    window = Window(group=group, start=start, length=n, series=series)
    onset_time = None if onset is None else window.time_at(onset)
    return Trace(window=window, throttle_onset=onset_time, description=description)


def _age_estimate(state: dict[str, Series]) -> Series:
    """The open loop's oldest-message age: the backlog over this minute's throughput."""
    return np.asarray(state["backlog"] / np.maximum(state["done"], 1.0) * 60, dtype=np.float64)


_SIGNALS = [s.value for s in Signal if s is not Signal.WORK_LATENCY]

#: The random draws behind every measurement, in the order the model has always drawn them.
NOISE_KEYS = ("jitter", "sent", "deleted", "age", "cpu", "iowait", "mem")


def draw_noise(m: FleetModel, n: int) -> dict[str, Series]:
    """Every measurement's noise for `n` minutes, drawn once so that a slice measures the same."""
    rng = np.random.default_rng(m.seed)
    return {
        "jitter": rng.normal(0, m.noise / 2, n),
        "sent": rng.normal(0, m.noise, n),
        "deleted": rng.normal(0, m.noise, n),
        "age": rng.random(n),
        "cpu": rng.normal(0, 1.0, n),
        "iowait": rng.normal(0, 1.5, n),
        "mem": rng.normal(0, 1.0, n),
    }


def cpu_pct(done_per_instance: Series | float, cpu_s_per_msg: float, vcpus: int) -> Series:
    """Average CPU user % of an instance that processed `done_per_instance` messages a minute."""
    return np.asarray(done_per_instance * cpu_s_per_msg / (vcpus * 60) * 100, dtype=np.float64)


def measured_cpu(true_pct: Series | float, noise: Series | float) -> Series:
    """CPU user % as the agent reports it (also what CPUUtilization shows, iowait being idle)."""
    return _percent(np.asarray(true_pct + noise, dtype=np.float64))


def measure(
    m: FleetModel, st: dict[str, Series], noise: dict[str, Series], *, first_minute: int = 0
) -> dict[str, Series]:
    """What CloudWatch would report for the model's state, with noise where real metrics have it.

    `st` holds per-minute arrays: arrivals, done, visible, in_flight, oldest_age, size, used_mb,
    disk_mb, balance, cpu_pct and limited; `first_minute` is the minute of their first element
    (the balance metrics are published every fifth minute of the run).
    """
    n = len(st["arrivals"])
    limited = st["limited"] > 0
    cpu = st["cpu_pct"]
    util = np.minimum(st["used_mb"] / np.maximum(st["disk_mb"], 1e-9), 1.0)
    iowait = m.iowait_floor_pct + (100 - cpu) * 0.6 * util
    mb, ops = st["used_mb"] * 1e6, st["used_mb"] * 1000 / m.kb_per_op
    # A throttled disk serves a flat, constant amount: no noise while held at the limit.
    jitter = np.where(limited, 1.0, 1 + noise["jitter"])
    every_fifth = (np.arange(n) + first_minute) % 5 == 0  # AWS publishes balances as 5-min data.
    return {
        "queue_sent": np.round(_noisy(st["arrivals"], noise["sent"])),
        "queue_deleted": np.round(_noisy(st["done"], noise["deleted"])),
        "queue_visible": np.round(st["visible"]),
        "queue_in_flight": np.round(st["in_flight"]),
        "queue_oldest_age": np.round(st["oldest_age"] + 5 * noise["age"]),
        "instances": st["size"],
        "cpu_user": measured_cpu(cpu, noise["cpu"]),
        "cpu_iowait": _percent(iowait + noise["iowait"]),
        "ebs_read_bytes": np.round(mb * (1 - m.write_share) * jitter),
        "ebs_write_bytes": np.round(mb * m.write_share * jitter),
        "ebs_read_ops": np.round(ops * (1 - m.write_share) * jitter),
        "ebs_write_ops": np.round(ops * m.write_share * jitter),
        "ebs_byte_balance": np.where(every_fifth, np.round(st["balance"] * 100, 2), np.nan),
        "ebs_io_balance": np.where(every_fifth, 100.0, np.nan),
        "ebs_throughput_exceeded": limited.astype(np.float64),
        "ebs_iops_exceeded": np.zeros(n),
        "mem_used": np.round(m.mem_used_pct + noise["mem"], 2),
    }


def _noisy(x: Series, noise: Series) -> Series:
    return np.maximum(x * (1 + noise), 0.0)


def _percent(values: Series) -> Series:
    """Clipped to [0, 100] and rounded to 0.01, as the agent reports percentages."""
    return np.asarray(np.round(np.clip(values, 0.0, 100.0), 2), dtype=np.float64)
