"""Desired capacity from the backlog: pure, vectorized over a window, causal per minute.

    required  = arrivals + backlog / drain_minutes                      (msg/min)
    desired   = ceil(required / (per_instance_capacity * target_utilization))

`per_instance_capacity` is the smallest of what an instance can *sustain*: its measured
throughput while the queue keeps it busy, its EBS baseline divided by the bytes (or I/O
operations) one message costs, its CPU headroom, and the policy's own figure. Sizing on the
EBS baseline rather than the burst is what keeps an I/O-heavy fleet from falling behind again
once its burst credits run out. The result is clamped to [min, max]; within the tolerance
band nothing changes; a lower value must hold for the stabilization window before it is
advised; and missing data gives no opinion, never a scale-in.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scaler.instances.catalog import InstanceFacts
from scaler.numeric import Mask, ffill, rolling_max, rolling_mean, rolling_min
from scaler.signals import EBS_BYTES, EBS_OPS, Series, Signal, Window

__all__ = [
    "Basis",
    "CapacityDecision",
    "CapacityPlan",
    "CapacitySettings",
    "plan_capacity",
    "required_instances",
]

_BASIS_TEXT = {
    "measured": "measured while the backlog kept every instance busy",
    "ebs_bytes": "the instance's EBS baseline throughput",
    "ebs_iops": "the instance's EBS baseline IOPS",
    "cpu": "CPU headroom up to the ceiling",
    "policy": "the policy's per_instance_capacity",
}


class Basis(StrEnum):
    """Which limit set the per-instance capacity."""

    MEASURED = "measured"
    EBS_BYTES = "ebs_bytes"
    EBS_IOPS = "ebs_iops"
    CPU = "cpu"
    POLICY = "policy"


_BASES = list(Basis)


class CapacitySettings(BaseModel):
    """How to size a group from its backlog; every field has a documented default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    drain_minutes: float = Field(30.0, gt=0, description="Drain the current backlog within this.")
    target_utilization: float = Field(
        0.9, gt=0, le=1, description="Fraction of sustained per-instance capacity to plan for."
    )
    tolerance: float = Field(
        0.10, ge=0, lt=1, description="No change while desired/current is within 1 +/- this."
    )
    scale_in_stabilization_minutes: int = Field(
        5, ge=1, description="A lower capacity must be advised this long before scale-in."
    )
    measure_minutes: int = Field(5, ge=1, description="Average rates over this many minutes.")
    timeline_pace_minutes: int = Field(
        5, ge=1, description="A backtest repeats advice moving the same way at most this often."
    )
    per_instance_capacity: float | None = Field(
        None, gt=0, description="Messages/min one instance sustains, if known from load tests."
    )
    cpu_ceiling_pct: float = Field(
        85.0, gt=0, le=100, description="CPU user % an instance can run at before it saturates."
    )
    saturation_backlog_minutes: float = Field(
        1.0, gt=0, description="Backlog above this many minutes of throughput = fleet is busy."
    )
    stale_minutes: int = Field(
        3, ge=0, description="Carry a missing datapoint forward at most this long."
    )


def required_instances(
    arrivals: float, backlog: float, drain_minutes: float, per_instance: float, utilization: float
) -> int:
    """The formula alone: instances that absorb arrivals and drain the backlog in time."""
    required = arrivals + backlog / drain_minutes
    return math.ceil(required / (per_instance * utilization) - 1e-9)


class CapacityDecision(BaseModel):
    """The capacity advice at one minute, with the numbers behind it."""

    model_config = ConfigDict(frozen=True)

    desired: int | None
    current: int | None
    raw: int | None
    required_msg_per_min: float | None
    arrivals_msg_per_min: float | None
    backlog: float | None
    per_instance_msg_per_min: float | None
    measured_msg_per_min: float | None
    basis: Basis | None
    bytes_per_message: float | None
    held_by: str | None
    reason: str

    def evidence(self) -> dict[str, float | int | str | None]:
        """The numbers, rounded for people, for a recommendation's evidence."""

        def r(x: float | None, nd: int = 1) -> float | None:
            return None if x is None else round(x, nd)

        return {
            "arrivals_msg_per_min": r(self.arrivals_msg_per_min),
            "backlog": r(self.backlog, 0),
            "required_msg_per_min": r(self.required_msg_per_min),
            "per_instance_msg_per_min": r(self.per_instance_msg_per_min),
            "measured_msg_per_min_per_instance": r(self.measured_msg_per_min),
            "capacity_basis": self.basis.value if self.basis else None,
            "mb_per_message": r(
                None if self.bytes_per_message is None else self.bytes_per_message / 1e6, 2
            ),
            "raw_desired": self.raw,
            "held_by": self.held_by,
        }


class CapacityPlan(BaseModel):
    """Per-minute capacity arrays for a window; `at(i)` explains minute i."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    settings: CapacitySettings
    min_size: int
    max_size: int
    current: Series
    arrivals: Series
    backlog: Series
    required: Series
    per_instance: Series
    measured: Series
    bytes_per_message: Series
    basis: Series
    raw: Series
    desired: Series
    facts: InstanceFacts | None = None

    def at(self, i: int) -> CapacityDecision:
        """The decision at minute `i`, with a one-sentence reason."""

        def val(series: Series) -> float | None:
            v = float(series[i])
            return None if math.isnan(v) else v

        current, desired, raw = val(self.current), val(self.desired), val(self.raw)
        basis = None if math.isnan(self.basis[i]) else _BASES[int(self.basis[i])]
        held_by = None
        if raw is not None and desired is not None and current is not None and desired != raw:
            clamped = min(max(raw, self.min_size), self.max_size)
            if clamped != raw and desired == clamped:
                held_by = "max_size" if raw > self.max_size else "min_size"
            elif (
                desired == current
                and raw < current
                and abs(raw / current - 1) > self.settings.tolerance
            ):
                held_by = "scale_in_stabilization"
            elif desired == current:
                held_by = "tolerance"
        decision = CapacityDecision(
            desired=None if desired is None else int(desired),
            current=None if current is None else int(current),
            raw=None if raw is None else int(raw),
            required_msg_per_min=val(self.required),
            arrivals_msg_per_min=val(self.arrivals),
            backlog=val(self.backlog),
            per_instance_msg_per_min=val(self.per_instance),
            measured_msg_per_min=val(self.measured),
            basis=basis,
            bytes_per_message=val(self.bytes_per_message),
            held_by=held_by,
            reason="",
        )
        return decision.model_copy(update={"reason": _reason(decision, self)})


def _reason(d: CapacityDecision, plan: CapacityPlan) -> str:
    if d.desired is None:
        if d.per_instance_msg_per_min is None and d.required_msg_per_min is not None:
            return (
                "No capacity opinion: the fleet keeps up and its per-instance capacity is "
                "unknown (no CPU or EBS signal bounds it; no per_instance_capacity in the policy)."
            )
        return "No capacity opinion: queue or instance data is missing or stale, so no scale-in."
    if not d.required_msg_per_min or d.per_instance_msg_per_min is None:
        return (
            f"No demand: arrivals and backlog are both reported as zero, so "
            f"{d.desired} instance(s) (the minimum, after stabilization) suffice"
            + (f" (now {d.current})." if d.current is not None else ".")
        )
    s = plan.settings
    basis = _BASIS_TEXT[d.basis.value] if d.basis else "unknown"
    if d.basis is Basis.EBS_BYTES and plan.facts and d.bytes_per_message:
        basis = (
            f"{plan.facts.instance_type} EBS baseline {plan.facts.ebs_baseline_mb_s:g} MB/s "
            f"÷ {d.bytes_per_message / 1e6:.1f} MB per message, not its "
            f"{plan.facts.ebs_max_mb_s:g} MB/s burst"
        )
    text = (
        f"Arrivals {d.arrivals_msg_per_min:,.0f}/min plus draining {d.backlog:,.0f} queued in "
        f"{s.drain_minutes:g} min need {d.required_msg_per_min:,.0f} msg/min; at "
        f"{d.per_instance_msg_per_min:,.1f} msg/min per instance ({basis}) and "
        f"{s.target_utilization:.0%} utilization that is {d.raw} instances"
    )
    if d.held_by == "tolerance":
        text += f", within the {s.tolerance:.0%} tolerance of the current {d.current}: hold"
    elif d.held_by == "scale_in_stabilization":
        text += (
            f"; holding at {d.current} until lower advice has held "
            f"{s.scale_in_stabilization_minutes} min"
        )
    elif d.held_by in ("min_size", "max_size"):
        text += f", clamped to {d.held_by} {d.desired}"
    return text + (f" (now {d.current})." if d.current is not None else ".")


def _signal(window: Window, name: str) -> Series | None:
    return window.get(name)


def _per_message(
    usage: Series | None, per_instance_rate: Series, budget_per_min: float | None
) -> tuple[Series, Series]:
    """(cost per message, messages/min the budget sustains) from a per-instance usage rate."""
    nan = np.full(len(per_instance_rate), np.nan)
    if usage is None or budget_per_min is None:
        return nan, nan
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cost = np.where(per_instance_rate > 1e-9, usage / per_instance_rate, np.nan)
        sustained = np.where(cost > 0, budget_per_min / cost, np.nan)
    return cost, sustained


def plan_capacity(
    window: Window,
    settings: CapacitySettings,
    *,
    min_size: int,
    max_size: int,
    facts: InstanceFacts | None = None,
) -> CapacityPlan:
    """Desired capacity at every minute of `window`, each from that minute's past alone."""
    n, m = window.length, settings.measure_minutes
    nan = np.full(n, np.nan)

    def smooth(name: str) -> Series | None:
        s = _signal(window, name)
        return None if s is None else rolling_mean(s, m)

    current = _signal(window, Signal.INSTANCES)
    current = nan if current is None else np.round(ffill(current, settings.stale_minutes))
    backlog_raw = _signal(window, Signal.QUEUE_VISIBLE)
    backlog = nan if backlog_raw is None else ffill(backlog_raw, settings.stale_minutes)
    throughput = smooth(Signal.QUEUE_DELETED)
    throughput = nan if throughput is None else throughput
    arrivals = smooth(Signal.QUEUE_SENT)
    if arrivals is None:  # Arrivals = throughput + how fast the backlog grows.
        growth = rolling_mean(np.diff(backlog, prepend=np.nan), m)
        arrivals = throughput + growth
    arrivals = np.maximum(arrivals, 0.0)

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        measured = np.where(current > 0, throughput / current, np.nan)
        saturated = rolling_min(backlog, m) > settings.saturation_backlog_minutes * throughput
        bytes_used = window.total(EBS_BYTES)
        ops_used = window.total(EBS_OPS)
        bytes_per_msg, by_bytes = _per_message(
            None if bytes_used is None else rolling_mean(bytes_used, m),
            measured,
            facts.ebs_baseline_bytes_per_min if facts else None,
        )
        _, by_iops = _per_message(
            None if ops_used is None else rolling_mean(ops_used, m),
            measured,
            facts.ebs_baseline_ops_per_min if facts else None,
        )
        cpu = smooth(Signal.CPU_USER)
        by_cpu = (
            nan
            if cpu is None
            else np.where(cpu >= 1.0, measured * settings.cpu_ceiling_pct / cpu, np.nan)
        )
        by_policy = np.full(n, settings.per_instance_capacity or np.nan)
        by_measure = np.where(saturated, measured, np.nan)

        candidates = np.vstack([by_measure, by_bytes, by_iops, by_cpu, by_policy])
        candidates = np.where(candidates > 0, candidates, np.inf)
        basis = np.argmin(candidates, axis=0).astype(np.float64)
        per_instance = candidates.min(axis=0)
        unknown = ~np.isfinite(per_instance)
        per_instance = np.where(unknown, np.nan, per_instance)
        basis = np.where(unknown, np.nan, basis)

        required = arrivals + backlog / settings.drain_minutes
        raw = np.ceil(required / (per_instance * settings.target_utilization) - 1e-9)
        # Present-and-zero demand needs nothing, whatever an instance could do.
        raw = np.where(required == 0, 0.0, np.where(np.isfinite(raw), raw, np.nan))

    fresh = np.ones(n, dtype=bool)
    for name in (Signal.QUEUE_VISIBLE, Signal.QUEUE_DELETED, Signal.INSTANCES):
        values = _signal(window, name)
        fresh &= values is not None and ~np.isnan(values)
    desired = _rails(raw, current, fresh, settings, min_size, max_size)
    return CapacityPlan(
        settings=settings,
        min_size=min_size,
        max_size=max_size,
        current=current,
        arrivals=arrivals,
        backlog=backlog,
        required=required,
        per_instance=per_instance,
        measured=measured,
        bytes_per_message=bytes_per_msg,
        basis=basis,
        raw=raw,
        desired=desired,
        facts=facts,
    )


def _rails(
    raw: Series, current: Series, fresh: Mask, s: CapacitySettings, lo: int, hi: int
) -> Series:
    """Clamp, tolerance band, and scale-in stabilization (HPA: highest advice in window).

    A minute without an opinion, or whose queue/instance datapoints were carried forward
    rather than reported, counts as +inf in the window, so missing data blocks scale-in; so
    does a window too short to hold the stabilization period.
    """
    clamped = np.clip(raw, lo, hi)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        within = np.abs(clamped / current - 1.0) <= s.tolerance + 1e-9
    candidate = np.where(within & (current >= lo) & (current <= hi), current, clamped)
    blocking = np.where(np.isnan(candidate) | ~fresh, np.inf, candidate)
    span = s.scale_in_stabilization_minutes
    padded = np.concatenate((np.full(span - 1, np.inf), blocking))
    highest_recent = rolling_max(padded, span)[span - 1 :]
    scale_in = candidate < current
    stabilized = np.where(scale_in, np.minimum(current, highest_recent), candidate)
    # Bounds win over everything, including holding a current size that is out of bounds.
    bounded = np.clip(stabilized, lo, hi)
    return np.where(np.isnan(raw) | np.isnan(current), np.nan, bounded)
