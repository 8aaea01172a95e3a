"""Named, deterministic traces: the incident that defines scaler, and what must not fire."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from scaler.instances.catalog import bundled_catalog
from scaler.signals import Signal, Window
from scaler.sim.fleet import FleetModel, Trace, simulate

__all__ = [
    "INCIDENT_START",
    "Trace",
    "cpu_bound",
    "gappy",
    "healthy_diurnal",
    "incident",
    "iowait_blip",
    "month",
    "without_agent",
    "without_ebs",
]

INCIDENT_START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _m5_xlarge(**kwargs: float) -> FleetModel:
    return FleetModel(instance=bundled_catalog().require("m5.xlarge"), **kwargs)


def _surge(minutes: int, before: float, after: float, at: int, ramp: int = 5) -> np.ndarray:
    t = np.arange(minutes)
    return before + (after - before) * np.clip((t - at) / ramp, 0.0, 1.0)


def incident(minutes: int = 360) -> Trace:
    """m5.xlarge x 8: 2 h healthy at 1,600 msg/min, then 3,900 msg/min until the burst runs out.

    Healthy, each instance reads ~133 MB/s (under its 143.75 MB/s baseline). In the surge it
    reads ~325 MB/s on burst credits, which last about 75 minutes; then it is held at 143.75
    MB/s, throughput falls to ~216 msg/min per instance, CPU user falls, iowait climbs, and the
    backlog grows by ~2,000 msg/min while a 60% CPU target never fires.
    """
    return simulate(
        _m5_xlarge(),
        _surge(minutes, 1600, 3900, at=120),
        np.full(minutes, 8),
        start=INCIDENT_START,
        description="EBS burst exhaustion on m5.xlarge under a surge",
    )


def healthy_diurnal(days: float = 1.0, *, seed: int = 11) -> Trace:
    """A day of diurnal load that a fleet of 8 absorbs without touching its EBS burst."""
    minutes = int(days * 1440)
    t = np.arange(minutes)
    load = 1000 + 550 * np.sin(2 * np.pi * (t - 6 * 60) / 1440)
    return simulate(
        _m5_xlarge(seed=seed),
        load,
        np.full(minutes, 8),
        start=INCIDENT_START,
        description="healthy diurnal load",
    )


def cpu_bound(minutes: int = 180) -> Trace:
    """A CPU-heavy workload (1.2 CPU-s, 5 MB per message) overloaded at minute 60."""
    model = _m5_xlarge(cpu_s_per_msg=1.2, mb_per_msg=5.0)
    return simulate(
        model,
        _surge(minutes, 1200, 2000, at=60),
        np.full(minutes, 8),
        start=INCIDENT_START,
        description="CPU-bound overload",
    )


def iowait_blip(minutes: int = 180, at: int = 90, length: int = 3) -> Trace:
    """Healthy load with a 3-minute backup job that saturates the disk: a blip, not a state."""
    extra = np.zeros(minutes)
    extra[at : at + length] = 560.0
    return simulate(
        _m5_xlarge(),
        np.full(minutes, 1600.0),
        np.full(minutes, 8),
        start=INCIDENT_START,
        extra_io_mb_s=extra,
        description="3-minute backup job",
    )


def month(days: int = 30) -> Trace:
    """Diurnal load for `days` days with an EBS-burst incident on each weekday afternoon."""
    minutes = days * 1440
    t = np.arange(minutes)
    load = 1100 + 450 * np.sin(2 * np.pi * (t - 6 * 60) / 1440)
    day, minute_of_day = t // 1440, t % 1440
    surge = (day % 7 < 5) & (minute_of_day >= 14 * 60) & (minute_of_day < 17 * 60)
    load = np.where(surge, 3900.0, load)
    return simulate(
        _m5_xlarge(),
        load,
        np.full(minutes, 8),
        start=INCIDENT_START,
        description=f"{days} days of diurnal load with weekday surges",
    )


def _with_series(trace: Trace, series: dict[str, np.ndarray], description: str) -> Trace:
    w = trace.window
    return Trace(
        window=Window(group=w.group, start=w.start, length=w.length, series=series),
        throttle_onset=trace.throttle_onset,
        description=f"{trace.description}; {description}",
    )


def gappy(trace: Trace, *, drop: float = 0.05, hole_at: int | None = None, seed: int = 3) -> Trace:
    """Drop a share of datapoints at random, and every signal for 4 minutes at `hole_at`."""
    rng = np.random.default_rng(seed)
    w = trace.window
    hole = hole_at if hole_at is not None else w.length * 3 // 4
    series = {}
    for name, values in w.series.items():
        v = values.copy()
        v[rng.random(w.length) < drop] = np.nan
        v[hole : hole + 4] = np.nan
        series[name] = v
    return _with_series(trace, series, f"{drop:.0%} datapoints dropped, 4-minute hole")


def without_ebs(trace: Trace) -> Trace:
    """The same fleet as seen by a source without the AWS/EC2 EBS metrics."""
    kept = {k: v for k, v in trace.window.series.items() if not k.startswith("ebs_")}
    return _with_series(trace, kept, "no EBS metrics")


def without_agent(trace: Trace) -> Trace:
    """The same fleet without the CloudWatch agent (no CPU breakdown, no memory)."""
    agent = {Signal.CPU_USER, Signal.CPU_IOWAIT, Signal.MEM_USED}
    kept = {k: v for k, v in trace.window.series.items() if k not in agent}
    return _with_series(trace, kept, "no CloudWatch agent")
