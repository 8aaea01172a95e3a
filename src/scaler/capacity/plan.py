"""The capacity plan (desired capacity from the backlog): pure, vectorized, causal per minute.

    required  = arrivals + backlog / drain_minutes                      (msg/min)
    need      = required / (per_instance_capacity * target_utilization) (instances, unrounded)
    desired   = ceil(need)

or, for long jobs (concurrency sizing, as KEDA's SQS scaler does it):

    desired   = ceil((queue_visible + queue_in_flight) / messages_per_instance)

`per_instance_capacity` is the smallest of what an instance can *sustain*: its measured
throughput while the queue keeps it busy, its EBS baseline divided by the bytes (or I/O
operations) one message costs, its CPU headroom, and the policy's own figure. Sizing on the
EBS baseline rather than the burst is what keeps an I/O-heavy fleet from falling behind again
once its burst credits run out. The result is clamped to [min, max]; while the usage ratio
need / current (before rounding, as the Kubernetes HPA) is within the tolerance band nothing
changes; a lower value must hold for the stabilization window before it is advised; no
scale-in while an EBS burst balance is falling; and missing data gives no opinion, never a
scale-in.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict

from scaler.capacity.rails import apply_rails, balance_falling, concurrency_need
from scaler.capacity.settings import BASES, Basis, CapacitySettings, Hold, Sizing
from scaler.instances.catalog import InstanceFacts
from scaler.numeric import Mask, ffill, rolling_mean, rolling_min
from scaler.signals import EBS_BYTES, EBS_OPS, Series, Signal, Window

__all__ = [
    "CapacityDecision",
    "CapacityPlan",
    "capacity_reason",
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


_HOLD_TEXT = {
    Hold.TOLERANCE: "the {tol} tolerance band (the need is within {tol} of the current {cur})",
    Hold.SCALE_IN_STABILIZATION: "scale-in stabilization (the highest advice of the last "
    "{win} min)",
    Hold.MIN_SIZE: "min_size",
    Hold.MAX_SIZE: "max_size",
    Hold.BURST_BALANCE: "a falling EBS burst balance (no scale-in while the fleet spends its "
    "burst: the instances left would run out sooner)",
    Hold.DEPENDENCY: "dependency_bound (scale out by at most {step} a step: more instances "
    "help only if the dependency they wait on scales)",
}


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
    need: float | None = None
    required_msg_per_min: float | None
    arrivals_msg_per_min: float | None
    backlog: float | None
    in_flight: float | None = None
    per_instance_msg_per_min: float | None
    measured_msg_per_min: float | None
    messages_per_instance: float | None = None
    basis: Basis | None
    sizing: Sizing | None = None
    bytes_per_message: float | None
    held_by: Hold | None
    reason: str

    def evidence(self) -> dict[str, float | int | str | None]:
        """The numbers, rounded for people, for a recommendation's evidence."""

        def r(x: float | None, nd: int = 1) -> float | None:
            return None if x is None else round(x, nd)

        return {
            "arrivals_msg_per_min": r(self.arrivals_msg_per_min),
            "backlog": r(self.backlog, 0),
            "in_flight": r(self.in_flight, 0),
            "required_msg_per_min": r(self.required_msg_per_min),
            "per_instance_msg_per_min": r(self.per_instance_msg_per_min),
            "measured_msg_per_min_per_instance": r(self.measured_msg_per_min),
            "messages_per_instance": r(self.messages_per_instance, 2),
            "capacity_basis": self.basis.value if self.basis else None,
            "sizing": self.sizing.value if self.sizing else None,
            "mb_per_message": r(
                None if self.bytes_per_message is None else self.bytes_per_message / 1e6, 2
            ),
            "need_instances": r(self.need, 2),
            "raw_desired": self.raw,
            "held_by": self.held_by.value if self.held_by else None,
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
    in_flight: Series
    required: Series
    per_instance: Series
    measured: Series
    per_instance_concurrency: Series
    bytes_per_message: Series
    basis: Series
    concurrency: Mask
    need: Series
    raw: Series
    desired: Series
    balance_falling: Mask
    conservative: Mask
    facts: InstanceFacts | None = None

    def at(self, i: int) -> CapacityDecision:
        """The decision at minute `i`, with a one-sentence reason."""

        def val(series: Series) -> float | None:
            v = float(series[i])
            return None if math.isnan(v) else v

        current, desired, raw = val(self.current), val(self.desired), val(self.raw)
        basis = None if math.isnan(self.basis[i]) else BASES[int(self.basis[i])]
        sizing = None
        if raw is not None:
            sizing = Sizing.CONCURRENCY if self.concurrency[i] else Sizing.THROUGHPUT
        need = val(self.need)
        advised, now, planned = (None if x is None else int(x) for x in (desired, current, raw))
        decision = CapacityDecision(
            desired=advised,
            current=now,
            raw=planned,
            need=need,
            required_msg_per_min=val(self.required),
            arrivals_msg_per_min=val(self.arrivals),
            backlog=val(self.backlog),
            in_flight=val(self.in_flight),
            per_instance_msg_per_min=val(self.per_instance),
            measured_msg_per_min=val(self.measured),
            messages_per_instance=val(self.per_instance_concurrency),
            basis=basis,
            sizing=sizing,
            bytes_per_message=val(self.bytes_per_message),
            held_by=self._held_by(i, advised, now, planned, need),
            reason="",
        )
        return decision.model_copy(update={"reason": capacity_reason(decision, self)})

    def _held_by(
        self, i: int, desired: int | None, current: int | None, raw: int | None, need: float | None
    ) -> Hold | None:
        """What held the advised number away from the planned one; None when they agree."""
        if raw is None or desired is None or current is None or desired == raw:
            return None
        clamped = min(max(raw, self.min_size), self.max_size)
        if clamped != raw and desired == clamped:
            return Hold.MAX_SIZE if raw > self.max_size else Hold.MIN_SIZE
        if desired == current and _within(need, current, self.settings.tolerance):
            return Hold.TOLERANCE
        if desired == current and self.balance_falling[i] and raw < current:
            return Hold.BURST_BALANCE
        if desired > raw:
            return Hold.SCALE_IN_STABILIZATION
        if self.conservative[i] and desired < min(raw, self.max_size):
            return Hold.DEPENDENCY
        # Only the bounds can push advice below the plan (a size above max_size held there).
        return Hold.MAX_SIZE if desired >= self.max_size else Hold.MIN_SIZE


def _within(need: float | None, current: int, tolerance: float) -> bool:
    if need is None or current <= 0:
        return False
    return abs(need / current - 1.0) <= tolerance + 1e-9


def capacity_reason(d: CapacityDecision, plan: CapacityPlan) -> str:
    """The decision in sentences that state exactly the decision's numbers.

    It always says "that is N instances" for the planned number (`raw_desired`) and
    "advise M" for the advised one (`desired_capacity`), and names what held them apart.
    """
    if d.desired is None:
        if d.per_instance_msg_per_min is None and d.required_msg_per_min is not None:
            return (
                "No capacity opinion: the fleet keeps up and its per-instance capacity is "
                "unknown (no CPU or EBS signal bounds it; no per_instance_capacity in the policy)."
            )
        return "No capacity opinion: queue or instance data is missing or stale, so no scale-in."
    s = plan.settings
    if d.sizing is Sizing.CONCURRENCY and d.messages_per_instance:
        rate = "n/a" if d.measured_msg_per_min is None else f"{d.measured_msg_per_min:.2f}"
        why = (
            "the policy's sizing"
            if s.sizing == "concurrency"
            else f"{rate} completions per instance per minute is below "
            f"{s.concurrency_below_per_minute:g}, too coarse to size on"
        )
        text = (
            f"Concurrency sizing ({why}): {d.backlog or 0:,.0f} visible + "
            f"{d.in_flight or 0:,.0f} in flight at {d.messages_per_instance:g} per instance"
        )
        text += f" that is {d.raw} instances"
    elif not d.required_msg_per_min or d.per_instance_msg_per_min is None:
        text = "No demand: arrivals and backlog are both reported as zero, so that is 0 instances"
    else:
        basis = _BASIS_TEXT[d.basis.value] if d.basis else "unknown"
        if d.basis is Basis.EBS_BYTES and plan.facts and d.bytes_per_message:
            basis = (
                f"{plan.facts.instance_type} EBS baseline {plan.facts.ebs_baseline_mb_s:g} MB/s "
                f"÷ {d.bytes_per_message / 1e6:.1f} MB per message, not its "
                f"{plan.facts.ebs_max_mb_s:g} MB/s burst"
            )
        text = (
            f"Throughput sizing: arrivals {d.arrivals_msg_per_min:,.0f}/min plus draining "
            f"{d.backlog:,.0f} queued in {s.drain_minutes:g} min need "
            f"{d.required_msg_per_min:,.0f} msg/min; at {d.per_instance_msg_per_min:,.1f} msg/min "
            f"per instance ({basis}) and {s.target_utilization:.0%} utilization that is "
            f"{d.need or 0:.2f} instances' worth, so {d.raw} instances"
        )
    now = f" (now {d.current})" if d.current is not None else ""
    if d.held_by is None:
        return f"{text}: advise {d.desired}{now}."
    held = _HOLD_TEXT[d.held_by].format(
        tol=f"{s.tolerance:.0%}",
        cur=d.current,
        win=s.scale_in_stabilization_minutes,
        step=f"{s.dependency_step_pct:g}%",
    )
    return f"{text}; held by {held}: advise {d.desired}{now}."


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
    conservative: Mask | None = None,
) -> CapacityPlan:
    """Desired capacity at every minute of `window`, each from that minute's past alone.

    `conservative` marks minutes at which a rule found the fleet waiting on a dependency:
    scale-out is then taken in steps of `dependency_step_pct`.
    """
    n, m = window.length, settings.measure_minutes
    nan = np.full(n, np.nan)

    def smooth(name: str) -> Series | None:
        s = _signal(window, name)
        return None if s is None else rolling_mean(s, m)

    current = _signal(window, Signal.INSTANCES)
    current = nan if current is None else np.round(ffill(current, settings.stale_minutes))
    backlog_raw = _signal(window, Signal.QUEUE_VISIBLE)
    backlog = nan if backlog_raw is None else ffill(backlog_raw, settings.stale_minutes)
    in_flight_raw = _signal(window, Signal.QUEUE_IN_FLIGHT)
    in_flight = nan if in_flight_raw is None else ffill(in_flight_raw, settings.stale_minutes)
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
        need = required / (per_instance * settings.target_utilization)
        # Present-and-zero demand needs nothing, whatever an instance could do.
        need = np.where(required == 0, 0.0, np.where(np.isfinite(need), need, np.nan))
        concurrency, per_instance_conc, need_conc = concurrency_need(
            settings, backlog, in_flight, current, measured, saturated
        )
        need = np.where(concurrency, need_conc, need)
        raw = np.ceil(need - 1e-9)

    fresh = np.ones(n, dtype=bool)
    for name in (Signal.QUEUE_VISIBLE, Signal.QUEUE_DELETED, Signal.INSTANCES):
        values = _signal(window, name)
        fresh &= values is not None and ~np.isnan(values)
    falling = balance_falling(window, settings.balance_falling_minutes)
    stepped = np.zeros(n, dtype=bool) if conservative is None else conservative
    desired = apply_rails(need, raw, current, fresh, falling, stepped, settings, min_size, max_size)
    return CapacityPlan(
        settings=settings,
        min_size=min_size,
        max_size=max_size,
        current=current,
        arrivals=arrivals,
        backlog=backlog,
        in_flight=in_flight,
        required=required,
        per_instance=per_instance,
        measured=measured,
        per_instance_concurrency=per_instance_conc,
        bytes_per_message=bytes_per_msg,
        basis=basis,
        concurrency=concurrency,
        need=need,
        raw=raw,
        desired=desired,
        balance_falling=falling,
        conservative=stepped,
        facts=facts,
    )
