"""`latency_growth`: the time per unit of work rises steadily: it slows down with uptime."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from scaler.models import EvidenceValue, Finding, Severity, format_time
from scaler.rules.base import Opinion, Rule, RuleContext, RuleOutcome, RuleSettings, rules
from scaler.rules.features import rounded
from scaler.rules.trend import FitSpan, TrendFit
from scaler.signals import Series, Signal, Window

__all__ = ["LatencyGrowth", "LatencyGrowthSettings", "time_per_message"]


class LatencyGrowthSettings(RuleSettings):
    """When rising time per message is a trend rather than noise."""

    window_minutes: int = Field(360, ge=30, description="Fit the trend over this trailing span.")
    min_window_minutes: int = Field(
        120, ge=15, description="Judge only with at least this much data in the span."
    )
    bucket_minutes: int = Field(10, ge=1, description="Fit on each interval's median.")
    min_growth_ratio: float = Field(
        1.5, gt=1, description="Fitted last / fitted first must reach this."
    )
    min_confidence: float = Field(
        0.75, ge=0.5, le=1, description="Share of pairwise slopes that must agree in sign."
    )
    workers_per_instance: int = Field(
        1, ge=1, description="Concurrent tasks per instance, for time per message from throughput."
    )


def time_per_message(window: Window, workers: int) -> tuple[Series | None, str]:
    """Seconds per message: `work_latency` if reported, else derived while the queue is busy.

    Throughput only measures speed while every worker has work (a standing backlog); at other
    minutes it measures arrivals, so those minutes are left out rather than misread.
    """
    latency = window.get(Signal.WORK_LATENCY)
    if latency is not None:
        return latency, "work_latency"
    deleted, instances = window.get(Signal.QUEUE_DELETED), window.get(Signal.INSTANCES)
    visible = window.get(Signal.QUEUE_VISIBLE)
    if deleted is None or instances is None or visible is None:
        return None, "unavailable"
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        busy = visible > deleted
        derived = np.where(busy & (deleted > 0), instances * workers * 60 / deleted, np.nan)
    return derived, "derived_from_throughput"


@rules.register("latency_growth")
class LatencyGrowth(Rule):
    """Time per message rising steadily over the window (work that slows with uptime)."""

    name = "latency_growth"
    Settings = LatencyGrowthSettings
    settings: LatencyGrowthSettings

    def min_minutes(self) -> int:
        """A trend needs `min_window_minutes` of data before it can be fitted."""
        return self.settings.min_window_minutes

    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Fit the trailing median time per message; a steady rise is a finding."""
        s = self.settings
        values, source = time_per_message(window, s.workers_per_instance)
        if values is None:
            why = "latency_growth needs work_latency, or queue_deleted, instances and queue_visible"
            return RuleOutcome.skipped(self.name, window, [Signal.WORK_LATENCY], why)
        b = s.bucket_minutes
        trend = TrendFit.of(
            window,
            values,
            bucket_minutes=b,
            how="median",
            window_minutes=s.window_minutes,
            min_window_minutes=s.min_window_minutes,
        )
        fits, medians = trend.fits, trend.buckets
        first, last = trend.first, trend.last
        with np.errstate(invalid="ignore", divide="ignore"):
            floor = np.nanmin(medians) if np.isfinite(medians).any() else np.nan
            ratio = last / np.maximum(first, 0.1 * floor)
        holds = (
            (ratio >= s.min_growth_ratio) & (fits.slope > 0) & (fits.confidence >= s.min_confidence)
        )

        def describe(
            fit: FitSpan, start: int, end: int
        ) -> tuple[Severity, str, dict[str, EvidenceValue]]:
            present = fit.buckets[~np.isnan(fit.buckets)]
            third = max(len(present) // 3, 1)
            obs_first, obs_last = float(np.mean(present[:third])), float(np.mean(present[-third:]))
            growth = float(ratio[fit.k])
            summary = (
                f"Work is slowing down: time per message ({source.replace('_', ' ')}) averaged "
                f"{_ms(obs_first)} in the first third of {fit.fitted_from:%H:%M}-"
                f"{fit.fitted_to:%H:%M} and {_ms(obs_last)} in the last; the fit gives "
                f"{_ms(fit.first)} to {_ms(fit.last)} ({growth:.1f}x, {fit.confidence:.0%} of "
                "slopes agree)."
            )
            return (
                Severity.WARNING,
                summary,
                {
                    "first_s": rounded(fit.first, 6),
                    "last_s": rounded(fit.last, 6),
                    "growth_ratio": round(growth, 2),
                    "observed_first_s": rounded(obs_first, 6),
                    "observed_last_s": rounded(obs_last, 6),
                    "confidence": round(fit.confidence, 3),
                    "fitted_from": format_time(fit.fitted_from),
                    "fitted_to": format_time(fit.fitted_to),
                    "source": source,
                    "method": f"theil_sen_on_{b}min_medians",
                },
            )

        findings, active = trend.findings(self.name, holds, describe)
        return RuleOutcome(kind=self.name, findings=findings, active=active)

    def recommend(self, finding: Finding, context: RuleContext) -> Opinion | None:
        """Recycling as a mitigation, and the numbers to take to the application's owners."""
        ev = finding.evidence
        return Opinion(
            action="instance_refresh",
            reason=(
                "Mitigation, not a fix: recycle instances (instance refresh) on a schedule "
                "shorter than the slowdown's build-up. Take this to the application's owners: "
                f"time per message went from {ev.get('observed_first_s')} s to "
                f"{ev.get('observed_last_s')} s (fit {ev.get('first_s')} -> {ev.get('last_s')} s, "
                f"{ev.get('growth_ratio')}x) between {ev.get('fitted_from')} and "
                f"{ev.get('fitted_to')}: something grows with uptime (cache, leak, fragmentation)."
            ),
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"
