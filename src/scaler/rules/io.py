"""`iowait_bound`: the fleet waits on disk, so a CPU-based scaling policy never fires."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from scaler.instances.catalog import InstanceFacts
from scaler.models import EvidenceValue, Finding, Severity
from scaler.numeric import lagged, rolling_mean, rolling_min
from scaler.rules.base import (
    Opinion,
    Rule,
    RuleContext,
    RuleOutcome,
    SmoothedStateSettings,
    rules,
)
from scaler.rules.features import (
    Fleet,
    before_after,
    held,
    mean_over,
    num,
    pct,
    rounded,
    spans_to_findings,
)
from scaler.signals import EBS_BYTES, EBS_OPS, Series, Signal, Window

__all__ = ["IowaitBound", "IowaitBoundSettings"]

EBS_SIGNALS = (
    Signal.EBS_READ_BYTES,
    Signal.EBS_WRITE_BYTES,
    Signal.EBS_READ_OPS,
    Signal.EBS_WRITE_OPS,
    Signal.EBS_BYTE_BALANCE,
    Signal.EBS_IO_BALANCE,
    Signal.EBS_THROUGHPUT_EXCEEDED,
    Signal.EBS_IOPS_EXCEEDED,
)


class IowaitBoundSettings(SmoothedStateSettings):
    """When waiting on I/O counts as the state the fleet is in."""

    iowait_min_pct: float = Field(20.0, ge=0, le=100, description="iowait must be at least this.")
    iowait_rise_pct: float = Field(
        10.0,
        ge=0,
        description="...and this far above its recent low, unless above iowait_high_pct.",
    )
    iowait_high_pct: float = Field(40.0, ge=0, le=100, description="iowait this high counts alone.")
    baseline_minutes: int = Field(
        120, ge=10, description="Recent normal: lowest iowait / mean CPU over this many minutes."
    )
    cpu_rise_tolerance_pct: float = Field(
        5.0, ge=0, description="CPU user may rise this much and still count as 'not rising'."
    )
    behind_margin: float = Field(
        0.02, ge=0, lt=1, description="Throughput below arrivals by this fraction = falling behind."
    )
    balance_exhausted_pct: float = Field(
        5.0, ge=0, le=100, description="EBS balance at or below this means the burst is spent."
    )
    plateau_variation: float = Field(
        0.05, gt=0, description="EBS usage varying less than this (CV) is a plateau."
    )


def _span_mean(window: Window, signal: str, first: int, last: int, fill: int = 0) -> float | None:
    values = window.filled(signal, fill) if fill else window.get(signal)
    return None if values is None else mean_over(values, first, last)


class _Cause:
    """What the EBS metrics say about why the fleet waits, over one span."""

    def __init__(
        self,
        window: Window,
        first: int,
        last: int,
        s: IowaitBoundSettings,
        facts: InstanceFacts | None,
    ) -> None:
        self.reported = [sig.value for sig in EBS_SIGNALS if window.has(sig)]
        bytes_pi = window.total(EBS_BYTES)
        ops_pi = window.total(EBS_OPS)
        self.mb_s = self.mb_s_before = self.iops = None
        self.plateau = False
        if bytes_pi is not None:
            mb_s = bytes_pi / 60 / 1e6
            self.mb_s, self.mb_s_before = (
                mean_over(mb_s, first, last),
                mean_over(mb_s, first - 30, first - 1),
            )
            chunk = mb_s[first : last + 1]
            chunk = chunk[~np.isnan(chunk)]
            if len(chunk) >= 3 and chunk.mean() > 0:
                self.plateau = bool(chunk.std() / chunk.mean() < s.plateau_variation)
        if ops_pi is not None:
            self.iops = mean_over(ops_pi / 60, first, last)
        balances = [
            _span_min(window, sig, first, last)
            for sig in (Signal.EBS_BYTE_BALANCE, Signal.EBS_IO_BALANCE)
        ]
        known = [b for b in balances if b is not None]
        self.balance_min = min(known) if known else None
        exceeded = [
            _span_mean(window, sig, first, last, fill=5)
            for sig in (Signal.EBS_THROUGHPUT_EXCEEDED, Signal.EBS_IOPS_EXCEEDED)
        ]
        known = [e for e in exceeded if e is not None]
        self.exceeded_share = max(known) if known else None
        self.at_baseline = bool(
            facts
            and self.mb_s is not None
            and abs(self.mb_s - facts.ebs_baseline_mb_s) <= 0.1 * facts.ebs_baseline_mb_s
        ) or bool(
            facts
            and self.iops is not None
            and abs(self.iops - facts.ebs_baseline_iops) <= 0.1 * facts.ebs_baseline_iops
        )
        self.exhausted = (
            self.balance_min is not None and self.balance_min <= s.balance_exhausted_pct
        )
        self.exceeded = self.exceeded_share is not None and self.exceeded_share >= 0.5
        self.facts = facts

    @property
    def kind(self) -> str:
        """ebs_instance_limit, other_io, or unknown (no EBS metrics to tell)."""
        if not self.reported:
            return "unknown"
        if self.exhausted or self.exceeded or (self.plateau and self.at_baseline):
            return "ebs_instance_limit"
        return "other_io"

    def describe(self) -> str:
        """The cause in one clause a person reads."""
        f = self.facts
        if self.kind == "unknown":
            return (
                "no EBS metrics were reported, so the cause cannot be named (CPU and queue alone)"
            )
        if self.kind == "other_io":
            return (
                f"EBS shows no instance limit (balance {pct(self.balance_min)}, "
                f"{num(self.mb_s, 1)} MB/s per instance): look at the volume's own limit, "
                "network storage or lock contention"
            )
        parts = []
        if self.exhausted:
            parts.append(f"EBS burst balance exhausted ({pct(self.balance_min)})")
        if self.exceeded:
            parts.append("instances report the EBS limit exceeded")
        if self.plateau:
            parts.append(f"reads flat at {num(self.mb_s, 1)} MB/s per instance")
        text = "; ".join(parts)
        if f is not None:
            text += (
                f"; each {f.instance_type} is held at its EBS baseline of "
                f"{f.ebs_baseline_mb_s:g} MB/s ({f.ebs_max_mb_s:g} MB/s only while burst lasts)"
            )
        return text


def _span_min(window: Window, signal: str, first: int, last: int) -> float | None:
    values = window.filled(signal, 5)
    if values is None:
        return None
    chunk = values[max(first, 0) : last + 1]
    chunk = chunk[~np.isnan(chunk)]
    return float(chunk.min()) if len(chunk) else None


@rules.register("iowait_bound")
class IowaitBound(Rule):
    """Throughput falls below arrivals while CPU user does not rise and iowait climbs."""

    name = "iowait_bound"
    bound = "io"
    Settings = IowaitBoundSettings
    requires = (Signal.CPU_USER, Signal.CPU_IOWAIT, Signal.QUEUE_VISIBLE)
    settings: IowaitBoundSettings

    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Mark minutes where the fleet is waiting on disk, and explain each span."""
        s = self.settings
        fleet = Fleet.of(window, s.smooth_minutes)
        cpu, iowait = fleet.smoothed(Signal.CPU_USER), fleet.smoothed(Signal.CPU_IOWAIT)
        lag = s.sustain_minutes + s.smooth_minutes
        iowait_low = lagged(rolling_min(iowait, s.baseline_minutes), lag)
        cpu_before = lagged(rolling_mean(cpu, s.baseline_minutes), lag)
        behind, behind_known = fleet.behind(s.behind_margin)
        with np.errstate(invalid="ignore"):
            climbed = (iowait >= s.iowait_min_pct) & (
                (iowait - iowait_low >= s.iowait_rise_pct) | (iowait >= s.iowait_high_pct)
            )
            cpu_not_rising = (cpu < context.cpu_target_pct) & ~(
                cpu > cpu_before + s.cpu_rise_tolerance_pct
            )
        known = behind_known & ~np.isnan(cpu) & ~np.isnan(iowait)
        active = held(behind & climbed & cpu_not_rising, known, s.sustain_minutes, s.bridge_minutes)

        def describe(first: int, last: int) -> tuple[Severity, str, dict[str, EvidenceValue]]:
            return _describe(window, fleet, cpu, iowait, first, last, s, context)

        findings = spans_to_findings(window, self.name, active, s.sustain_minutes, describe)
        return RuleOutcome(kind=self.name, findings=findings, active=active)

    def recommend(self, finding: Finding, context: RuleContext) -> Opinion | None:
        """A type with local NVMe or enough sustained EBS, when the EBS limit is the cause."""
        if finding.evidence.get("cause") != "ebs_instance_limit" or context.instance is None:
            return None
        demand = finding.evidence.get("ebs_mb_s_per_instance_before")
        return _type_opinion(
            context.instance, demand if isinstance(demand, float) else None, context
        )


def _describe(
    window: Window,
    fleet: Fleet,
    cpu: Series,
    iowait: Series,
    first: int,
    last: int,
    s: IowaitBoundSettings,
    context: RuleContext,
) -> tuple[Severity, str, dict[str, EvidenceValue]]:
    tp_before, tp_after = before_after(fleet.per_instance, first, last)
    cpu_before, cpu_after = before_after(cpu, first, last)
    io_before, io_after = before_after(iowait, first, last)
    arrivals = mean_over(fleet.arrivals, first, last)
    throughput = mean_over(fleet.throughput, first, last)
    cause = _Cause(window, first, last, s, context.instance)
    target = context.cpu_target_pct
    rates = (
        f"throughput {num(throughput)}/min is below arrivals {num(arrivals)}/min"
        if arrivals is not None and throughput is not None
        else "the backlog keeps growing"
    )
    summary = (
        f"Fleet is waiting on disk: iowait {pct(io_before)} -> {pct(io_after)} while CPU user "
        f"went {pct(cpu_before)} -> {pct(cpu_after)} and throughput per instance "
        f"{num(tp_before)} -> {num(tp_after)} msg/min; {rates}. A CPU target of {target:.0f}% "
        f"will not trigger: CPU user is {pct(cpu_after)} and falls as the disk slows the work. "
        f"Cause: {cause.describe()}."
    )
    evidence: dict[str, EvidenceValue] = {
        "throughput_per_instance_before": rounded(tp_before),
        "throughput_per_instance_after": rounded(tp_after),
        "cpu_user_before_pct": rounded(cpu_before),
        "cpu_user_after_pct": rounded(cpu_after),
        "cpu_iowait_before_pct": rounded(io_before),
        "cpu_iowait_after_pct": rounded(io_after),
        "arrivals_msg_per_min": rounded(arrivals),
        "throughput_msg_per_min": rounded(throughput),
        "cpu_target_pct": target,
        "cause": cause.kind,
        "cause_detail": cause.describe(),
        "ebs_signals_reported": cause.reported,
        "ebs_mb_s_per_instance": rounded(cause.mb_s, 2),
        "ebs_mb_s_per_instance_before": rounded(cause.mb_s_before, 2),
        "ebs_iops_per_instance": rounded(cause.iops),
        "ebs_balance_min_pct": rounded(cause.balance_min),
        "ebs_exceeded_share": rounded(cause.exceeded_share, 2),
        "ebs_plateau": cause.plateau,
    }
    if context.instance is not None:
        evidence["instance_type"] = context.instance.instance_type
        evidence["ebs_baseline_mb_s"] = context.instance.ebs_baseline_mb_s
        evidence["ebs_burst_mb_s"] = context.instance.ebs_max_mb_s
    return Severity.CRITICAL, summary, evidence


def _type_opinion(
    current: InstanceFacts, demand_mb_s: float | None, context: RuleContext
) -> Opinion | None:
    """Local NVMe in the same family and size, else a size whose baseline covers the demand.

    Only types the policy's `instance_choice` allows are considered.
    """
    allowed = {t.instance_type: t for t in context.choices()}
    size = current.instance_type.split(".", 1)[1]
    nvme = None if current.local_nvme else allowed.get(f"{current.family}d.{size}")
    need = (
        demand_mb_s
        if demand_mb_s and demand_mb_s > current.ebs_baseline_mb_s
        else current.ebs_max_mb_s
    )
    bigger = sorted(
        (t for t in allowed.values() if t.family == current.family and t.ebs_baseline_mb_s >= need),
        key=lambda t: (t.vcpus, t.instance_type),
    )
    larger = bigger[0] if bigger else None
    larger_text = (
        f"{larger.instance_type} sustains {larger.ebs_baseline_mb_s:g} MB/s of EBS, covering the "
        f"{need:.0f} MB/s an instance used before the throttle, with no burst to run out"
        if larger
        else ""
    )
    if nvme is not None:
        reason = (
            f"{nvme.instance_type} adds a {nvme.local_storage_gb} GB local NVMe disk with the same "
            f"{nvme.vcpus} vCPUs; it keeps {current.instance_type}'s EBS limits "
            f"({current.ebs_baseline_mb_s:g} MB/s baseline), so it helps only once the hot I/O "
            "(cache or scratch directory) moves to the instance store, formatted at boot"
        )
        if larger_text:
            reason += f". Without that change, {larger_text}"
        return Opinion(instance_type=nvme.instance_type, reason=reason + ".")
    if larger is not None:
        return Opinion(
            instance_type=larger.instance_type,
            reason=larger_text[0].upper() + larger_text[1:] + ".",
        )
    return context.nothing_allowed(
        f"local-NVMe {current.family}d type and no {current.family} size that sustains "
        f"{need:.0f} MB/s of EBS"
    )
