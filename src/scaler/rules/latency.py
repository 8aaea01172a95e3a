"""`latency_growth`: the time per unit of work rises steadily: it slows down with uptime."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from scaler.models import EvidenceValue, Finding, Severity, format_time
from scaler.rules.base import Opinion, Rule, RuleContext, RuleOutcome, RuleSettings, rules
from scaler.rules.features import rounded, spans_to_findings
from scaler.rules.trendbase import latest_fit, mask_from_fits
from scaler.signals import Series, Signal, Window
from scaler.trend import bucket, fit_buckets

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

    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Fit the trailing median time per message; a steady rise is a finding."""
        s = self.settings
        values, source = time_per_message(window, s.workers_per_instance)
        if values is None:
            why = "latency_growth needs work_latency, or queue_deleted, instances and queue_visible"
            return RuleOutcome.skipped(self.name, window, [Signal.WORK_LATENCY], why)
        b = s.bucket_minutes
        medians = bucket(values, b, "median")
        count = max(s.window_minutes // b, 3)
        fits = fit_buckets(medians, count, s.min_window_minutes // b)
        first = fits.intercept + fits.slope * fits.first_x
        last = fits.intercept + fits.slope * (count - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            floor = np.nanmin(medians) if np.isfinite(medians).any() else np.nan
            ratio = last / np.maximum(first, 0.1 * floor)
        holds = (
            (ratio >= s.min_growth_ratio) & (fits.slope > 0) & (fits.confidence >= s.min_confidence)
        )
        active = mask_from_fits(fits, holds, b, window.length)

        def describe(start: int, end: int) -> tuple[Severity, str, dict[str, EvidenceValue]]:
            k = latest_fit(fits, end, b)
            assert k is not None  # active minutes always follow a fit
            stop, n = int(fits.end[k]), count - int(fits.first_x[k])
            chunk = medians[stop - n : stop]
            present = chunk[~np.isnan(chunk)]
            third = max(len(present) // 3, 1)
            obs_first, obs_last = float(np.mean(present[:third])), float(np.mean(present[-third:]))
            fit_from, fit_to = window.time_at((stop - n) * b), window.time_at(stop * b - 1)
            summary = (
                f"Work is slowing down: time per message ({source.replace('_', ' ')}) averaged "
                f"{_ms(obs_first)} in the first third of {fit_from:%H:%M}-{fit_to:%H:%M} and "
                f"{_ms(obs_last)} in the last; the fit gives {_ms(float(first[k]))} to "
                f"{_ms(float(last[k]))} ({float(ratio[k]):.1f}x, {fits.confidence[k]:.0%} of "
                "slopes agree)."
            )
            return (
                Severity.WARNING,
                summary,
                {
                    "first_s": rounded(float(first[k]), 6),
                    "last_s": rounded(float(last[k]), 6),
                    "growth_ratio": round(float(ratio[k]), 2),
                    "observed_first_s": rounded(obs_first, 6),
                    "observed_last_s": rounded(obs_last, 6),
                    "confidence": round(float(fits.confidence[k]), 3),
                    "fitted_from": format_time(fit_from),
                    "fitted_to": format_time(fit_to),
                    "source": source,
                    "method": f"theil_sen_on_{b}min_medians",
                },
            )

        findings = spans_to_findings(window, self.name, active, 1, describe)
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
