"""ebs_burst_exhaustion: warn before an "up to" instance's EBS burst bucket runs out."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import numpy as np
from pydantic import Field

from scaler.instances.burst import (
    BURST_MINUTES,
    FRESH_INSTANCE_NOTE,
    Bucket,
    bytes_per_min_to_mb_s,
    ops_per_min_to_iops,
)
from scaler.instances.catalog import InstanceFacts
from scaler.models import EvidenceValue, Finding, Severity, Unevaluated, format_time
from scaler.numeric import Mask, rolling_mean, runs, sustained
from scaler.rules.base import Opinion, Rule, RuleContext, RuleOutcome, RuleSettings, rules
from scaler.signals import EBS_BYTES, EBS_OPS, Series, Signal, Window

__all__ = ["EbsBurstExhaustion", "EbsBurstSettings"]


#: Usage within this fraction of the baseline is the throttle itself, not burst being spent.
_THROTTLED_WITHIN = 0.05


class EbsBurstSettings(RuleSettings):
    """When to warn that the EBS burst bucket will run out."""

    warn_minutes_ahead: float = Field(
        120.0,
        gt=0,
        description="Warn while the bucket is predicted to run out within this many minutes "
        "(time to change the type or scale out before the fleet turns iowait-bound).",
    )
    critical_minutes_ahead: float = Field(
        15.0, ge=0, description="The warning is critical when the bucket runs out this soon."
    )
    measure_minutes: int = Field(
        5, ge=1, description="Average per-instance EBS usage over this many minutes."
    )
    min_minutes: int = Field(
        3, ge=1, description="Usage must stay above the baseline this long before a warning."
    )
    rearm_balance_pct: float = Field(
        20.0,
        ge=0,
        le=100,
        description="After a bucket runs out, warn again only once it has refilled to this.",
    )
    burst_minutes: float = Field(
        BURST_MINUTES,
        gt=0,
        description="Minutes a full bucket lasts at the type's maximum (AWS: 30).",
    )


class _Track:
    """One bucket (throughput or IOPS) followed over the window."""

    def __init__(
        self,
        name: str,
        unit: str,
        *,
        bucket: Bucket,
        usage: Series,
        measured_pct: Series | None,
        measure_minutes: int,
    ) -> None:
        self.name, self.unit, self.bucket = name, unit, bucket
        self.usage = rolling_mean(usage, measure_minutes, min_count=(measure_minutes + 1) // 2)
        self.measured_at = (
            np.flatnonzero(~np.isnan(measured_pct))
            if measured_pct is not None
            else np.array([], dtype=np.int64)
        )
        self.balance = bucket.estimate_balance(usage, measured_pct)
        self.minutes = bucket.minutes_to_empty_series(self.usage, self.balance)


@rules.register("ebs_burst_exhaustion")
class EbsBurstExhaustion(Rule):
    """Warns before an "up to" instance type's EBS burst runs out and the fleet is throttled."""

    name = "ebs_burst_exhaustion"
    bound = "io"
    Settings: ClassVar[type[RuleSettings]] = EbsBurstSettings

    def evaluate(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Findings, or a skipped outcome naming the missing fact or signals."""
        if context.instance is None:
            return RuleOutcome(
                kind=self.name,
                findings=[],
                active=np.zeros(window.length, dtype=bool),
                unevaluated=Unevaluated(
                    kind=self.name,
                    group=window.group,
                    missing=["instance_type"],
                    reason=f"{self.name} needs the instance type (its EBS baseline and "
                    "maximum); set instance_type in the policy or pass --instance-type",
                ),
            )
        usage_signals = [*EBS_BYTES, *EBS_OPS]
        missing = window.missing(usage_signals)
        if len(missing) == len(usage_signals):
            why = f"{self.name} needs EBS bytes or operations per instance ({', '.join(missing)})"
            return RuleOutcome.skipped(self.name, window, missing, why)
        return self.too_short(window) or self.detect(window, context)

    def min_minutes(self) -> int:
        """Usage must stay above the baseline `min_minutes` before a warning."""
        settings = self.settings
        assert isinstance(settings, EbsBurstSettings)
        return settings.min_minutes

    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Minutes at which usage is above baseline and the bucket empties within the horizon."""
        assert context.instance is not None  # evaluate() returns early without it
        settings = self.settings
        assert isinstance(settings, EbsBurstSettings)
        tracks = self._tracks(window, context.instance, settings)
        soonest = np.full(window.length, np.inf)
        spent = np.zeros(window.length, dtype=bool)
        draining = np.zeros(window.length, dtype=bool)
        for track in tracks:
            soonest = np.fmin(soonest, track.minutes)  # fmin: a missing minute is no alarm
            spent |= _spent(track, settings.rearm_balance_pct / 100.0)
            with np.errstate(invalid="ignore"):
                draining |= (track.minutes <= settings.warn_minutes_ahead) & (
                    track.usage > track.bucket.baseline * (1 + _THROTTLED_WITHIN)
                )
        # A warning is about the future: it starts only while the bucket still holds credit,
        # runs on until the fleet is held at its baseline, and is not raised again once the
        # bucket has run out (the throttle is iowait_bound's to name) until it has refilled.
        ahead = (soonest > 0) & (soonest <= settings.warn_minutes_ahead) & ~spent
        active = _carried(sustained(ahead, settings.min_minutes), draining)
        findings = [
            self._finding(window, context.instance, tracks, run, settings) for run in runs(active)
        ]
        return RuleOutcome(kind=self.name, findings=findings, active=active)

    def _tracks(
        self, window: Window, facts: InstanceFacts, settings: EbsBurstSettings
    ) -> list[_Track]:
        out = []
        byte_usage = window.total(EBS_BYTES)
        if byte_usage is not None and facts.ebs_bursts:
            out.append(
                _Track(
                    "throughput",
                    "MB/s",
                    bucket=Bucket.throughput(facts, settings.burst_minutes),
                    usage=bytes_per_min_to_mb_s(byte_usage),
                    measured_pct=window.get(Signal.EBS_BYTE_BALANCE.value),
                    measure_minutes=settings.measure_minutes,
                )
            )
        ops_usage = window.total(EBS_OPS)
        if ops_usage is not None and facts.ebs_max_iops > facts.ebs_baseline_iops:
            out.append(
                _Track(
                    "iops",
                    "IOPS",
                    bucket=Bucket.iops(facts, settings.burst_minutes),
                    usage=ops_per_min_to_iops(ops_usage),
                    measured_pct=window.get(Signal.EBS_IO_BALANCE.value),
                    measure_minutes=settings.measure_minutes,
                )
            )
        return out

    def _finding(
        self,
        window: Window,
        facts: InstanceFacts,
        tracks: list[_Track],
        run: tuple[int, int],
        settings: EbsBurstSettings,
    ) -> Finding:
        first, last = run
        ongoing = last == window.length - 1
        # An ongoing warning speaks for now; a past one for the minute it was raised, since
        # its last minutes blur into the throttled rate that followed.
        at = last if ongoing else first
        track = min(tracks, key=lambda t: _nan_as_never(t.minutes[at]))
        usage, minutes = float(track.usage[at]), float(track.minutes[at])
        after = track.bucket.sustained_after(usage)
        # balances are as of the end of a minute, so predictions count from there
        if minutes > 0:
            empties_at = window.time_at(at + 1) + timedelta(minutes=minutes)
        else:
            empty = first + int(np.argmax(track.minutes[first : last + 1] <= 0))
            empties_at = window.time_at(empty + 1)
        severity = (
            Severity.CRITICAL if minutes <= settings.critical_minutes_ahead else Severity.WARNING
        )
        evidence: dict[str, EvidenceValue] = {
            "instance_type": facts.instance_type,
            "as_of": format_time(window.time_at(at)),
            "limit": track.name,
            "unit": track.unit,
            "usage": _r(usage),
            "baseline": _r(track.bucket.baseline),
            "maximum": _r(track.bucket.maximum),
            "balance_pct": _r(100.0 * float(track.balance[at])),
            "balance_source": _balance_source(track, window, at),
            "minutes_to_exhaustion": _r(minutes),
            "exhaustion_at": format_time(empties_at),
            "first_warned_minutes_ahead": _r(_nan_as_never(track.minutes[first])),
            "sustained_after": _r(after),
            "fresh_instances": FRESH_INSTANCE_NOTE,
        }
        if track.name == "throughput":
            evidence.update(
                usage_mb_s=_r(usage),
                baseline_mb_s=_r(facts.ebs_baseline_mb_s),
                max_mb_s=_r(facts.ebs_max_mb_s),
                sustained_after_mb_s=_r(after),
            )
        if not ongoing:
            # A past warning speaks for the minute it was raised: in the past tense, dated, so
            # a reader never takes its forecast for minutes still left.
            when = (
                f"was, at {format_time(window.time_at(at))[11:16]} UTC, forecast to run out in "
                f"about {round(minutes)} minutes; then each instance sustains"
            )
        elif round(minutes) > 0:
            when = f"runs out in about {round(minutes)} minutes; then each instance sustains"
        else:
            when = f"ran out at {format_time(empties_at)}; each instance now sustains"
        summary = (
            f"at {_r(usage):g} {track.unit} per instance this fleet's EBS burst {when} "
            f"{_r(after):g} {track.unit} ({facts.instance_type} baseline); {FRESH_INSTANCE_NOTE}"
        )
        return Finding(
            kind=self.name,
            group=window.group,
            start=window.time_at(first),
            end=None if ongoing else window.time_at(last),
            severity=severity,
            summary=summary,
            evidence=evidence,
        )

    def recommend(self, finding: Finding, context: RuleContext) -> Opinion | None:
        """The smallest same-family size whose sustained EBS throughput covers the usage."""
        facts = context.instance
        usage = finding.evidence.get("usage_mb_s")
        if facts is None or not isinstance(usage, int | float):
            return None
        fits = [
            t
            for t in context.choices()
            if t.family == facts.family
            and t.architecture == facts.architecture
            and t.ebs_baseline_mb_s >= usage
        ]
        local = f"{facts.family}d" if not facts.local_nvme else facts.family
        if not fits:
            exists = any(
                t.family == facts.family and t.ebs_baseline_mb_s >= usage
                for t in context.catalog.all()
            )
            if exists:
                return context.nothing_allowed(
                    f"{facts.family} size that sustains {usage:g} MB/s of EBS"
                )
            return Opinion(
                reason=f"each instance draws {usage:g} MB/s, above what any {facts.family} size "
                f"sustains; move the hot I/O to local NVMe ({local}) or spread it over more "
                "instances"
            )
        best = min(fits, key=lambda t: (t.vcpus, t.instance_type))
        return Opinion(
            instance_type=best.instance_type,
            reason=f"each instance draws {usage:g} MB/s but {facts.instance_type} sustains "
            f"{facts.ebs_baseline_mb_s:g} MB/s once its burst is gone; {best.instance_type} "
            f"sustains {best.ebs_baseline_mb_s:g} MB/s, or keep the size and move the hot I/O "
            f"to the local NVMe of {local} (see the ranked alternatives)",
        )


def _carried(started: Mask, going_on: Mask) -> Mask:
    """`started` runs, each extended for as long as `going_on` holds after it."""
    if not started.any():
        return started.copy()
    # A minute-by-minute carry, on Python bools (numpy scalar indexing costs several times more).
    out, going = started.tolist(), going_on.tolist()
    for i in range(1, len(out)):
        if not out[i] and out[i - 1] and going[i]:
            out[i] = True
    return np.array(out, dtype=bool)


def _spent(track: _Track, rearm: float) -> Mask:
    """Minutes from a bucket running out until its balance is back at `rearm` (0..1)."""
    empty = track.minutes <= 0
    if not empty.any():
        return np.zeros(len(track.minutes), dtype=bool)
    out: list[bool] = []
    state = False
    for is_empty, refilled in zip(empty.tolist(), (track.balance >= rearm).tolist(), strict=True):
        if is_empty:
            state = True
        elif state and refilled:
            state = False
        out.append(state)
    return np.array(out, dtype=bool)


def _balance_source(track: _Track, window: Window, at: int) -> str:
    """Where the balance at minute `at` comes from: a measurement, or the full-bucket model."""
    earlier = track.measured_at[track.measured_at <= at]
    if not len(earlier):
        return "estimated from a full bucket"
    when = format_time(window.time_at(int(earlier[-1])))
    return "measured" if earlier[-1] == at else f"measured at {when}, then estimated from usage"


def _nan_as_never(value: float) -> float:
    """Minutes to empty with a missing value read as never (sorts last)."""
    return float(value) if not np.isnan(value) else np.inf


def _r(value: float) -> float:
    """Two decimals: enough for MB/s and minutes, and stable in JSON."""
    return round(float(value), 2)
