"""`backlog_growing`: arrivals exceed throughput for a sustained span; when will it hurt?"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from scaler.models import EvidenceValue, Severity, format_time
from scaler.numeric import lagged, rolling_mean
from scaler.rules.base import Rule, RuleContext, RuleOutcome, SmoothedStateSettings, rules
from scaler.rules.features import (
    BOTTLENECK_SIGNALS,
    CpuBudget,
    Fleet,
    bottleneck,
    held,
    mean_over,
    num,
    rounded,
    spans_to_findings,
)
from scaler.signals import Series, Signal, Window

__all__ = ["BacklogGrowing", "BacklogGrowingSettings", "minutes_until_age_limit"]


class BacklogGrowingSettings(SmoothedStateSettings):
    """When a growing queue is a finding, and the message age that hurts."""

    rate_minutes: int = Field(5, ge=1, description="Average arrival/throughput rates over this.")
    min_growth_per_min: float = Field(
        1.0, ge=0, description="Growth below this many messages/min is noise, not a backlog."
    )
    max_message_age_s: float = Field(
        900.0, gt=0, description="The age of the oldest message that breaks the service's promise."
    )
    critical_within_minutes: float = Field(
        30.0, ge=0, description="Critical when the age limit is this close (or already passed)."
    )


def minutes_until_age_limit(
    *,
    limit_s: float,
    oldest_age_s: float | None,
    age_slope_s_per_min: float | None,
    backlog: float | None,
    throughput_per_min: float | None,
    growth_per_min: float | None,
) -> tuple[float | None, str]:
    """Minutes until the oldest message passes `limit_s`, and how it was projected.

    With the age signal, extrapolate its measured slope; without it, use the wait a new
    message faces: backlog / throughput, which grows as the backlog grows.
    """
    if oldest_age_s is not None:
        if oldest_age_s >= limit_s:
            return 0.0, "oldest_age_already_past"
        if age_slope_s_per_min is not None and age_slope_s_per_min > 0:
            return (limit_s - oldest_age_s) / age_slope_s_per_min, "oldest_age_trend"
    if backlog is not None and throughput_per_min and growth_per_min and growth_per_min > 0:
        wait_s = backlog / throughput_per_min * 60
        if wait_s >= limit_s:
            return 0.0, "queue_wait_already_past"
        return (limit_s * throughput_per_min / 60 - backlog) / growth_per_min, "queue_wait_growth"
    return None, "unknown"


@rules.register("backlog_growing")
class BacklogGrowing(Rule):
    """Arrivals exceed throughput for a sustained span."""

    name = "backlog_growing"
    Settings = BacklogGrowingSettings
    requires = (Signal.QUEUE_VISIBLE,)
    settings: BacklogGrowingSettings

    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Mark minutes where the queue grows, and project when its oldest message gets too old."""
        s = self.settings
        fleet = Fleet.of(window, s.smooth_minutes)
        backlog = fleet.backlog
        slope = (backlog - lagged(backlog, s.rate_minutes)) / s.rate_minutes
        sent, deleted = window.get(Signal.QUEUE_SENT), window.get(Signal.QUEUE_DELETED)
        if sent is not None and deleted is not None:
            growth = rolling_mean(sent, s.rate_minutes) - rolling_mean(deleted, s.rate_minutes)
        else:
            growth = slope
        with np.errstate(invalid="ignore"):
            condition = (growth > s.min_growth_per_min) & (slope > 0)
        known = ~np.isnan(growth) & ~np.isnan(slope)
        active = held(condition, known, s.sustain_minutes, s.bridge_minutes)
        age_f = window.filled(Signal.QUEUE_OLDEST_AGE, 5)

        budget = CpuBudget.of(fleet)

        def describe(first: int, last: int) -> tuple[Severity, str, dict[str, EvidenceValue]]:
            severity, summary, evidence = _describe(fleet, growth, age_f, first, last, s)
            kind, missing = _bottleneck(window, fleet, budget, first, last)
            evidence["bottleneck"] = kind
            evidence["bottleneck_missing"] = missing
            named = (
                f" Bottleneck: {kind}."
                if kind != "unknown"
                else " Bottleneck: unknown"
                + (f" ({', '.join(missing)} not reported)." if missing else ".")
            )
            return severity, summary + named, evidence

        findings = spans_to_findings(window, self.name, active, s.sustain_minutes, describe)
        return RuleOutcome(kind=self.name, findings=findings, active=active)


def _bottleneck(
    window: Window, fleet: Fleet, budget: CpuBudget, first: int, last: int
) -> tuple[str, list[str]]:
    """Which resource holds the fleet back over the span, and the signals that would tell."""
    mem = window.get(Signal.MEM_USED)
    kind = bottleneck(
        mean_over(budget.busy, first, last),
        mean_over(budget.idle, first, last),
        mean_over(budget.iowait, first, last),
        None if mem is None else mean_over(mem, first, last),
    )
    missing = window.missing(BOTTLENECK_SIGNALS) if kind == "unknown" else []
    return kind, missing


def _at(values: Series | None, i: int) -> float | None:
    if values is None:
        return None
    v = float(values[i])
    return None if np.isnan(v) else v


def _describe(
    fleet: Fleet,
    growth: Series,
    age: Series | None,
    first: int,
    last: int,
    s: BacklogGrowingSettings,
) -> tuple[Severity, str, dict[str, EvidenceValue]]:
    rate = mean_over(growth, max(first, last - s.rate_minutes + 1), last)
    backlog_start, backlog_end = _at(fleet.backlog, first), _at(fleet.backlog, last)
    throughput = mean_over(fleet.throughput, max(first, last - s.rate_minutes + 1), last)
    oldest = _at(age, last)
    age_slope = None
    if age is not None:
        earlier = _at(age, max(first, last - 10))
        if earlier is not None and oldest is not None and last > first:
            age_slope = (oldest - earlier) / min(10, last - first)
    eta, method = minutes_until_age_limit(
        limit_s=s.max_message_age_s,
        oldest_age_s=oldest,
        age_slope_s_per_min=age_slope,
        backlog=backlog_end,
        throughput_per_min=throughput,
        growth_per_min=rate,
    )
    limit_min = s.max_message_age_s / 60
    if eta is None:
        when = "the time until messages pass the age limit cannot be projected"
    elif eta == 0:
        when = f"messages are already older than the {limit_min:g}-minute limit"
    else:
        when = f"the oldest message passes the {limit_min:g}-minute limit in about {eta:.0f} min"
    passed_at = _first_past_limit(fleet, age, first, last, s.max_message_age_s)
    if passed_at is not None and eta == 0:
        when += f" (since {fleet.window.time_at(passed_at):%H:%M} UTC)"
    severity = (
        Severity.CRITICAL
        if eta is not None and eta <= s.critical_within_minutes
        else Severity.WARNING
    )
    summary = (
        f"Backlog growing by {num(rate)} msg/min ({num(backlog_start)} -> {num(backlog_end)} "
        f"queued; throughput {num(throughput)}/min); {when}."
    )
    return (
        severity,
        summary,
        {
            "growth_msg_per_min": rounded(rate),
            "backlog_start": rounded(backlog_start, 0),
            "backlog_end": rounded(backlog_end, 0),
            "throughput_msg_per_min": rounded(throughput),
            "oldest_age_s": rounded(oldest, 0),
            "oldest_age_slope_s_per_min": rounded(age_slope, 2),
            "max_message_age_s": s.max_message_age_s,
            "minutes_to_age_limit": rounded(eta),
            "projection": method,
            "age_limit_passed_at": (
                None if passed_at is None else format_time(fleet.window.time_at(passed_at))
            ),
        },
    )


def _first_past_limit(
    fleet: Fleet, age: Series | None, first: int, last: int, limit_s: float
) -> int | None:
    """The first minute of the span at which messages waited longer than the limit."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        wait = age if age is not None else fleet.backlog / fleet.throughput * 60
        past = np.flatnonzero(wait[first : last + 1] >= limit_s)
    return int(first + past[0]) if len(past) else None
