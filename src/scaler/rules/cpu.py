"""`cpu_bound`: the fleet falls behind with its CPU budget spent.

CPU is judged as a budget (see `CpuBudget`): busy = user + system + steal; the budget is spent
when busy reaches the saturation threshold with little iowait, or when no idle CPU is left and
busy time outweighs iowait (84% user and 12% iowait with nothing idle is CPU-bound).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from scaler.models import EvidenceValue, Severity
from scaler.rules.base import Rule, RuleContext, RuleOutcome, SmoothedStateSettings, rules
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

__all__ = ["CpuBound", "CpuBoundSettings"]


class CpuBoundSettings(SmoothedStateSettings):
    """When a busy CPU is what limits the fleet."""

    cpu_saturated_pct: float = Field(
        85.0,
        gt=0,
        le=100,
        description="CPU busy (user + system + steal) at or above this is saturated.",
    )
    iowait_max_pct: float = Field(
        10.0, ge=0, le=100, description="...with iowait below this (unless no CPU is idle)."
    )
    cpu_idle_max_pct: float = Field(
        5.0,
        ge=0,
        le=100,
        description="Idle CPU at or below this (cpu_idle, else 100 - busy - iowait) is a spent "
        "budget when busy outweighs iowait.",
    )
    behind_margin: float = Field(
        0.02, ge=0, lt=1, description="Throughput below arrivals by this fraction = falling behind."
    )


@rules.register("cpu_bound")
class CpuBound(Rule):
    """Throughput plateaus with CPU near saturation and low iowait."""

    name = "cpu_bound"
    bound = "cpu"
    Settings = CpuBoundSettings
    requires = (Signal.CPU_USER, Signal.QUEUE_VISIBLE)
    settings: CpuBoundSettings

    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Mark minutes where CPU is saturated, iowait is low and work piles up."""
        s = self.settings
        fleet = Fleet.of(window, s.smooth_minutes)
        budget = CpuBudget.of(fleet)
        cpu, iowait, busy, idle = budget.user, budget.iowait, budget.busy, budget.idle
        behind, behind_known = fleet.behind(s.behind_margin)
        # Without the iowait signal, a saturated CPU alone still names the state.
        has_iowait = window.has(Signal.CPU_IOWAIT)
        with np.errstate(invalid="ignore"):
            low_iowait = (iowait < s.iowait_max_pct) if has_iowait else np.ones(window.length, bool)
            no_idle = (idle <= s.cpu_idle_max_pct) & (busy > np.nan_to_num(iowait))
            spent = ((busy >= s.cpu_saturated_pct) & low_iowait) | no_idle
            condition = behind & spent
        known = behind_known & ~np.isnan(busy) & (~np.isnan(iowait) if has_iowait else True)
        active = held(condition, known, s.sustain_minutes, s.bridge_minutes)

        def describe(first: int, last: int) -> tuple[Severity, str, dict[str, EvidenceValue]]:
            cpu_before, cpu_after = before_after(cpu, first, last)
            busy_after, idle_after = mean_over(busy, first, last), mean_over(idle, first, last)
            tp_before, tp_after = before_after(fleet.per_instance, first, last)
            io_after = mean_over(iowait, first, last)
            arrivals = mean_over(fleet.arrivals, first, last)
            throughput = mean_over(fleet.throughput, first, last)
            summary = (
                f"Fleet is CPU-bound: CPU busy {pct(busy_after)} (user {pct(cpu_after)}, was "
                f"{pct(cpu_before)}), idle {pct(idle_after)}, iowait "
                f"{pct(io_after)}, throughput per instance {num(tp_after)} msg/min against "
                f"arrivals {num(arrivals)}/min. More instances add throughput in proportion; "
                "a CPU target would fire here, and a compute-optimized type may be cheaper."
            )
            return (
                Severity.WARNING,
                summary,
                {
                    "cpu_user_before_pct": rounded(cpu_before),
                    "cpu_user_after_pct": rounded(cpu_after),
                    "cpu_iowait_pct": rounded(io_after),
                    "throughput_per_instance_before": rounded(tp_before),
                    "throughput_per_instance_after": rounded(tp_after),
                    "arrivals_msg_per_min": rounded(arrivals),
                    "throughput_msg_per_min": rounded(throughput),
                    "iowait_reported": has_iowait,
                    "cpu_busy_pct": rounded(busy_after),
                    "cpu_idle_pct": rounded(idle_after),
                    "cpu_budget_from": budget.sources,
                },
            )

        findings = spans_to_findings(window, self.name, active, s.sustain_minutes, describe)
        return RuleOutcome(kind=self.name, findings=findings, active=active)
