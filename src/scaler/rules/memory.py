"""`memory_leak` (a robust upward trend under the GC saw-tooth) and `memory_pressure`."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from scaler.models import EvidenceValue, Finding, Severity, format_time
from scaler.numeric import runs
from scaler.rules.base import (
    Opinion,
    Rule,
    RuleContext,
    RuleOutcome,
    RuleSettings,
    SustainedStateSettings,
    rules,
)
from scaler.rules.features import held, rounded, spans_to_findings
from scaler.rules.trend import FitSpan, TrendFit, bucket
from scaler.signals import Signal, Window

__all__ = ["MemoryLeak", "MemoryLeakSettings", "MemoryPressure", "MemoryPressureSettings"]


class MemoryLeakSettings(RuleSettings):
    """When a slow climb in memory is a leak, and where it ends."""

    window_minutes: int = Field(480, ge=60, description="Fit the trend over this trailing span.")
    min_window_minutes: int = Field(
        180, ge=30, description="Judge only with at least this much data in the span."
    )
    bucket_minutes: int = Field(
        30, ge=1, description="Fit on each interval's minimum (longer than one GC cycle)."
    )
    min_slope_pct_per_hour: float = Field(
        0.25, gt=0, description="Slower climbs are not reported as leaks."
    )
    min_confidence: float = Field(
        0.75, ge=0.5, le=1, description="Share of pairwise slopes that must agree in sign."
    )
    limit_pct: float = Field(100.0, gt=0, le=100, description="Memory use at which it fails (OOM).")
    critical_within_hours: float = Field(
        12.0, ge=0, description="Critical when the projected OOM is this close."
    )
    min_half_slope_share: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Each half of the fitted span must climb at least this share of the whole "
        "fit's slope: a one-time step (a deploy raising memory, then flat) is not a leak.",
    )
    restart_drop_pct: float = Field(
        10.0,
        gt=0,
        description="A fall of the floor by this many points between intervals is a restart; "
        "the leak is measured on the climbing segments between restarts.",
    )


@rules.register("memory_leak")
class MemoryLeak(Rule):
    """A sustained upward trend in memory under the saw-tooth of garbage collection."""

    name = "memory_leak"
    Settings = MemoryLeakSettings
    requires = (Signal.MEM_USED,)
    settings: MemoryLeakSettings

    def min_minutes(self) -> int:
        """A trend needs `min_window_minutes` of data before it can be fitted."""
        return self.settings.min_window_minutes

    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Fit the trailing floor of memory at every interval; a steady climb is a leak."""
        s = self.settings
        mem = window.series[Signal.MEM_USED]
        b = s.bucket_minutes
        trend = TrendFit.of(
            window,
            mem,
            bucket_minutes=b,
            how="min",
            window_minutes=s.window_minutes,
            min_window_minutes=s.min_window_minutes,
            restart_drop=s.restart_drop_pct,
        )
        peaks = bucket(mem, b, "max")
        per_hour = trend.per_hour
        holds = (per_hour >= s.min_slope_pct_per_hour) & (trend.fits.confidence >= s.min_confidence)
        for k in map(int, np.flatnonzero(holds)):
            halves = trend.half_slopes(k)
            need = s.min_half_slope_share * float(trend.fits.slope[k])
            holds[k] = all(h >= need for h in halves)  # NaN (a half without data) fails
        restart_at = np.flatnonzero(np.diff(trend.segments) > 0) + 1  # buckets that restarted

        def describe(
            fit: FitSpan, first: int, last: int
        ) -> tuple[Severity, str, dict[str, EvidenceValue]]:
            window_peaks = peaks[fit.stop - fit.n : fit.stop]
            sawtooth = float(np.nanmedian(window_peaks - fit.buckets))
            slope_h = float(per_hour[fit.k])
            headroom = s.limit_pct - (fit.last + sawtooth)
            hours = max(headroom, 0.0) / slope_h
            oom_at = fit.fitted_to + np.timedelta64(int(hours * 3600), "s").item()
            severity = Severity.CRITICAL if hours <= s.critical_within_hours else Severity.WARNING
            seen = restart_at[restart_at < fit.stop]
            summary = (
                f"Memory is leaking: its floor climbs {slope_h:.2f}%/hour (Theil-Sen on "
                f"{b}-minute minima, {fit.confidence:.0%} of slopes agree) from "
                f"{fit.first:.1f}% to {fit.last:.1f}% between {fit.fitted_from:%H:%M} and "
                f"{fit.fitted_to:%H:%M}; with GC peaks {sawtooth:.1f}% above the floor it "
                f"reaches {s.limit_pct:g}% in about {hours:.1f} hours."
            )
            restart_evidence: dict[str, EvidenceValue] = {"restarts": len(seen)}
            if len(seen):
                last_restart = window.time_at(int(seen[-1]) * b)
                period_h = float(np.median(np.diff(seen))) * b / 60 if len(seen) >= 2 else None
                summary += (
                    f" It resets when the process restarts ({len(seen)} restart(s) seen, the "
                    f"last at {last_restart:%Y-%m-%d %H:%M}); measured on the climbing "
                    "segments between them"
                )
                restart_evidence["last_restart_at"] = format_time(last_restart)
                if period_h is not None:
                    due = last_restart + np.timedelta64(int(period_h * 3600), "s").item()
                    first_due = "restart" if due < oom_at else "OOM"
                    summary += (
                        f"; restarts come about every {period_h:.1f} hours, so the next is due "
                        f"about {due:%Y-%m-%d %H:%M}, and the {first_due} comes first"
                    )
                    restart_evidence["restart_period_hours"] = round(period_h, 2)
                    restart_evidence["next_restart_due_at"] = format_time(due)
                summary += "."
            return (
                severity,
                summary,
                {
                    "slope_pct_per_hour": round(slope_h, 3),
                    "hours_to_exhaustion": round(hours, 2),
                    "projected_exhaustion_at": format_time(oom_at),
                    "limit_pct": s.limit_pct,
                    "floor_now_pct": rounded(fit.last, 2),
                    "gc_sawtooth_pct": rounded(sawtooth, 2),
                    "confidence": round(fit.confidence, 3),
                    "fitted_from": format_time(fit.fitted_from),
                    "fitted_to": format_time(fit.fitted_to),
                    "method": f"theil_sen_on_{b}min_minima",
                    **restart_evidence,
                },
            )

        findings, active = trend.findings(self.name, holds, describe)
        return RuleOutcome(kind=self.name, findings=findings, active=active)

    def recommend(self, finding: Finding, context: RuleContext) -> Opinion | None:
        """A scheduled instance refresh before the projected OOM: a mitigation, not a fix."""
        hours = finding.evidence.get("hours_to_exhaustion")
        at = finding.evidence.get("projected_exhaustion_at")
        if not isinstance(hours, float | int):
            return None
        before = max(float(hours) * 0.5, 0.0)
        return Opinion(
            action="instance_refresh",
            reason=(
                f"Mitigation, not a fix: schedule an instance refresh (recycling) within "
                f"{before:.1f} hours, well before the projected OOM at {at}; fresh instances "
                "start with empty memory. The fix is in the application: the leak comes back."
            ),
        )


class MemoryPressureSettings(SustainedStateSettings):
    """When high memory is pressure rather than a GC spike (shorter than sustain_minutes)."""

    threshold_pct: float = Field(90.0, gt=0, le=100, description="Memory at or above this is high.")
    bridge_minutes: int = Field(1, ge=0, description="Missing minutes that do not break a span.")


@rules.register("memory_pressure")
class MemoryPressure(Rule):
    """Memory above the threshold for a sustained span (GC spikes of a minute or two are not)."""

    name = "memory_pressure"
    bound = "memory"
    Settings = MemoryPressureSettings
    requires = (Signal.MEM_USED,)
    settings: MemoryPressureSettings

    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Mark sustained high-memory spans and describe how they recur."""
        s = self.settings
        mem = window.series[Signal.MEM_USED]  # the rule runs only where memory is reported
        filled = window.filled(Signal.MEM_USED, s.bridge_minutes)
        assert filled is not None
        with np.errstate(invalid="ignore"):
            high = filled >= s.threshold_pct
        active = held(high, ~np.isnan(filled), s.sustain_minutes, 0)
        episodes = [(a, e) for a, e in runs(high, s.sustain_minutes)]

        def describe(first: int, last: int) -> tuple[Severity, str, dict[str, EvidenceValue]]:
            seen = [(a, e) for a, e in episodes if a <= last]
            durations = [e - a + 1 for a, e in seen]
            starts = [a for a, _ in seen]
            period_h = float(np.median(np.diff(starts))) / 60 if len(starts) >= 2 else None
            peak = float(np.nanmax(mem[first : last + 1]))
            typical = float(np.median(durations))
            recurring = (
                f"; {len(seen)} such episodes so far, typically {typical:.0f} minutes "
                f"every {period_h:.1f} hours"
                if period_h
                else ""
            )
            summary = (
                f"Memory pressure: above {s.threshold_pct:g}% for {last - first + 1} minutes, "
                f"peaking at {peak:.0f}%{recurring} (spikes shorter than "
                f"{s.sustain_minutes} minutes are GC cycles and are not counted)."
            )
            return (
                Severity.WARNING,
                summary,
                {
                    "peak_pct": round(peak, 1),
                    "minutes_above": last - first + 1,
                    "threshold_pct": s.threshold_pct,
                    "episodes": len(seen),
                    "typical_minutes": round(typical, 1),
                    "period_hours": None if period_h is None else round(period_h, 2),
                },
            )

        findings = spans_to_findings(window, self.name, active, s.sustain_minutes, describe)
        return RuleOutcome(kind=self.name, findings=findings, active=active)

    def recommend(self, finding: Finding, context: RuleContext) -> Opinion | None:
        """A memory-optimized type with the same vCPUs, and what it costs."""
        current = context.instance
        if current is None:
            return Opinion(
                reason="Memory-bound: move to a memory-optimized type with the same vCPUs "
                "(the instance type is unknown, so none is named)."
            )
        options = sorted(
            (
                t
                for t in context.choices()
                if t.vcpus == current.vcpus
                and t.memory_gib > current.memory_gib
                and t.architecture == current.architecture
                and not t.local_nvme
            ),
            key=lambda t: (context.price(t.instance_type) or float("inf"), t.memory_gib),
        )
        if not options:
            return context.nothing_allowed(
                f"memory-optimized type with {current.vcpus} vCPUs and more than "
                f"{current.memory_gib:g} GiB"
            )
        choice = options[0]
        now, then = context.price(current.instance_type), context.price(choice.instance_type)
        cost = (
            f"{then - now:+.3f} USD/hour per instance ({now:.3f} -> {then:.3f})"
            if now is not None and then is not None
            else "price unknown for one of the types; not estimated"
        )
        return Opinion(
            instance_type=choice.instance_type,
            reason=(
                f"{choice.instance_type} has {choice.memory_gib:g} GiB with the same "
                f"{choice.vcpus} vCPUs (vs {current.memory_gib:g} GiB); {cost}."
            ),
        )
