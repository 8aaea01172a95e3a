"""`dependency_bound`: the fleet falls behind while its CPU and disk are both idle.

Throughput below arrivals with CPU idle and iowait low means the work waits on something
outside the instance: a downstream service, the network, a lock. More instances help only if
that dependency scales, so the advice says so instead of sizing on the backlog alone.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from scaler.models import EvidenceValue, Finding, Severity
from scaler.rules.base import (
    Opinion,
    Rule,
    RuleContext,
    RuleOutcome,
    SmoothedStateSettings,
    rules,
)
from scaler.rules.features import (
    CpuBudget,
    Fleet,
    before_after,
    held,
    mean_over,
    num,
    pct,
    rounded,
    spans_to_findings,
)
from scaler.signals import Signal, Window

__all__ = ["DependencyBound", "DependencyBoundSettings"]


class DependencyBoundSettings(SmoothedStateSettings):
    """When a fleet falling behind with idle CPU and disk is waiting on a dependency."""

    cpu_busy_max_pct: float = Field(
        50.0,
        gt=0,
        le=100,
        description="CPU busy (user + system + steal) below this is idle enough to rule out CPU.",
    )
    iowait_max_pct: float = Field(
        10.0, ge=0, le=100, description="iowait below this rules out the disk."
    )
    behind_margin: float = Field(
        0.02, ge=0, lt=1, description="Throughput below arrivals by this fraction = falling behind."
    )
    min_growth_per_min: float = Field(
        1.0,
        ge=0,
        description="...and the backlog must grow faster than this (msg/min): an idle fleet "
        "with an empty queue is not waiting on anything.",
    )


@rules.register("dependency_bound")
class DependencyBound(Rule):
    """Throughput falls below arrivals while CPU is idle and iowait stays low."""

    name = "dependency_bound"
    steps_scale_out = True
    Settings = DependencyBoundSettings
    requires = (Signal.CPU_USER, Signal.CPU_IOWAIT, Signal.QUEUE_VISIBLE)
    settings: DependencyBoundSettings

    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Mark minutes where the fleet is behind with neither CPU nor disk busy."""
        s = self.settings
        fleet = Fleet.of(window, s.smooth_minutes)
        budget = CpuBudget.of(fleet)
        behind, behind_known = fleet.behind(s.behind_margin)
        with np.errstate(invalid="ignore"):
            waiting = (budget.busy < s.cpu_busy_max_pct) & (budget.iowait < s.iowait_max_pct)
            growing = fleet.backlog_growth > s.min_growth_per_min
        known = behind_known & ~np.isnan(budget.busy) & ~np.isnan(budget.iowait)
        active = held(behind & growing & waiting, known, s.sustain_minutes, s.bridge_minutes)
        latency = window.get(Signal.WORK_LATENCY)

        def describe(first: int, last: int) -> tuple[Severity, str, dict[str, EvidenceValue]]:
            busy_before, busy_after = before_after(budget.busy, first, last)
            io_before, io_after = before_after(budget.iowait, first, last)
            tp_before, tp_after = before_after(fleet.per_instance, first, last)
            lat_before, lat_after = (
                before_after(latency, first, last) if latency is not None else (None, None)
            )
            arrivals = mean_over(fleet.arrivals, first, last)
            throughput = mean_over(fleet.throughput, first, last)
            slower = (
                f"; time per message {lat_before:.2f} s -> {lat_after:.2f} s"
                if lat_before is not None and lat_after is not None
                else ""
            )
            summary = (
                f"Fleet waits on something outside the instance: throughput "
                f"{num(throughput)}/min is below arrivals {num(arrivals)}/min while CPU is "
                f"{pct(busy_after)} busy (was {pct(busy_before)}) and iowait {pct(io_after)} "
                f"(was {pct(io_before)}); throughput per instance {num(tp_before)} -> "
                f"{num(tp_after)} msg/min{slower}. Look at a downstream service, the network "
                "or a lock."
            )
            return (
                Severity.WARNING,
                summary,
                {
                    "cpu_busy_before_pct": rounded(busy_before),
                    "cpu_busy_after_pct": rounded(busy_after),
                    "cpu_iowait_before_pct": rounded(io_before),
                    "cpu_iowait_after_pct": rounded(io_after),
                    "throughput_per_instance_before": rounded(tp_before),
                    "throughput_per_instance_after": rounded(tp_after),
                    "work_latency_before_s": rounded(lat_before, 3),
                    "work_latency_after_s": rounded(lat_after, 3),
                    "arrivals_msg_per_min": rounded(arrivals),
                    "throughput_msg_per_min": rounded(throughput),
                    "cpu_budget_from": budget.sources,
                },
            )

        findings = spans_to_findings(window, self.name, active, s.sustain_minutes, describe)
        return RuleOutcome(kind=self.name, findings=findings, active=active)

    def recommend(self, finding: Finding, context: RuleContext) -> Opinion | None:
        """Say that more instances help only if the dependency scales."""
        return Opinion(
            action="check_dependency",
            reason=(
                "The fleet is dependency-bound: CPU and disk are idle while work waits. Adding "
                "instances helps only if the dependency scales (more workers can add load to a "
                "saturated service or lock), so scale out in small steps, watch throughput per "
                "instance, and look at the dependency first."
            ),
        )
