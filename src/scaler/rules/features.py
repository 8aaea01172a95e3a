"""Derived series and span helpers the detectors share: computed the same way everywhere."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from scaler.models import EvidenceValue, Finding, Severity
from scaler.numeric import Mask, ffill, lagged, rolling_median, runs, sustained
from scaler.signals import Series, Signal, Window

__all__ = [
    "BOTTLENECK_SIGNALS",
    "CpuBudget",
    "Fleet",
    "before_after",
    "bottleneck",
    "held",
    "mean_over",
    "num",
    "pct",
    "rounded",
    "spans_to_findings",
]


class Fleet:
    """Smoothed fleet rates of one window (median of 3 minutes: robust, keeps edges sharp).

    Rules take it with `Fleet.of`, so the rates are derived once per window, not once a rule.
    """

    @classmethod
    def of(cls, window: Window, smooth_minutes: int = 3) -> Fleet:
        """The window's fleet rates at this smoothing, shared by every rule that asks."""
        return window.derived(("fleet", smooth_minutes), lambda: cls(window, smooth_minutes))

    def __init__(self, window: Window, smooth_minutes: int = 3) -> None:
        # Weak: the window keeps this Fleet (Window.derived), so a strong reference back would
        # make every evaluated window a reference cycle that only the garbage collector frees.
        self._window = weakref.ref(window)
        self.smooth = smooth_minutes
        n = window.length
        self.nan = np.full(n, np.nan)
        self.instances = self._ffilled(Signal.INSTANCES, 5)
        self.throughput = self.smoothed(Signal.QUEUE_DELETED)
        self.backlog = self._ffilled(Signal.QUEUE_VISIBLE, 2)
        sent = window.get(Signal.QUEUE_SENT)
        self.has_arrivals = sent is not None
        self.arrivals = self.smoothed(Signal.QUEUE_SENT) if sent is not None else self.nan
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            self.per_instance = np.where(
                self.instances > 0, self.throughput / self.instances, np.nan
            )
        # Backlog growth per minute over the smoothing span: positive means falling behind.
        self.backlog_growth = (self.backlog - lagged(self.backlog, smooth_minutes)) / smooth_minutes
        for shared in (self.nan, self.instances, self.backlog, self.per_instance):
            shared.flags.writeable = False  # rules share these: none may change them
        self.backlog_growth.flags.writeable = False

    @property
    def window(self) -> Window:
        """The window these rates were derived from (alive while a rule uses its fleet)."""
        window = self._window()
        assert window is not None, "a Fleet outlived its window"
        return window

    def smoothed(self, signal: str) -> Series:
        """The signal smoothed, or all-NaN if the source does not report it."""
        values = self.window.get(signal)
        if values is None:
            return self.nan
        return self.window.derived(
            ("smoothed", signal, self.smooth), lambda: rolling_median(values, self.smooth)
        )

    def _ffilled(self, signal: str, limit: int) -> Series:
        values = self.window.filled(signal, limit)
        return self.nan if values is None else values

    def behind(self, margin: float) -> tuple[Mask, Mask]:
        """(falling behind, known): arrivals exceed throughput, or the backlog keeps growing."""
        with np.errstate(invalid="ignore"):
            gap = self.arrivals - self.throughput
            by_rates = gap > margin * np.maximum(self.arrivals, 1.0)
            by_backlog = (self.backlog_growth > 0) & (self.backlog > 0)
        known = ~np.isnan(self.backlog_growth) | ~np.isnan(gap)
        return (by_rates | by_backlog), known


class CpuBudget:
    """CPU as a budget: busy (user + system + steal) against idle and iowait, per minute.

    Fallbacks where the CloudWatch agent's finer signals are absent: a missing `cpu_system` or
    `cpu_steal` counts as 0 (busy is then user alone, the most conservative reading), and a
    missing `cpu_idle` is what the other parts leave: 100 - busy - iowait (unknown without
    iowait). `sources` names what was read.
    """

    @classmethod
    def of(cls, fleet: Fleet) -> CpuBudget:
        """The fleet's CPU budget, shared by every rule that asks."""
        return fleet.window.derived(("cpu_budget", fleet.smooth), lambda: cls(fleet))

    def __init__(self, fleet: Fleet) -> None:
        window = fleet.window
        self.user = fleet.smoothed(Signal.CPU_USER)
        self.iowait = fleet.smoothed(Signal.CPU_IOWAIT)
        parts = [Signal.CPU_USER, Signal.CPU_SYSTEM, Signal.CPU_STEAL]
        self.sources = [str(p) for p in parts if window.has(p)]
        busy = self.user.copy()
        for extra in (Signal.CPU_SYSTEM, Signal.CPU_STEAL):
            if window.has(extra):
                busy = busy + np.nan_to_num(fleet.smoothed(extra))
        self.busy = busy
        if window.has(Signal.CPU_IDLE):
            self.idle = fleet.smoothed(Signal.CPU_IDLE)
            self.sources.append(Signal.CPU_IDLE.value)
        elif window.has(Signal.CPU_IOWAIT):
            self.idle = np.maximum(100.0 - busy - self.iowait, 0.0)
            self.sources.append("cpu_idle derived: 100 - busy - iowait")
        else:
            self.idle = fleet.nan


#: The signals that tell which resource holds a fleet back, for `bottleneck`.
BOTTLENECK_SIGNALS = (Signal.CPU_USER, Signal.CPU_IOWAIT, Signal.CPU_IDLE, Signal.MEM_USED)
_IOWAIT_HIGH, _BUSY_SATURATED, _IDLE_SPENT, _MEM_HIGH = 20.0, 85.0, 5.0, 90.0
_DEPENDENCY_BUSY_MAX, _IOWAIT_LOW = 50.0, 10.0


def bottleneck(
    busy: float | None, idle: float | None, iowait: float | None, mem: float | None
) -> str:
    """Which resource a falling-behind fleet waits on: cpu, io, memory, dependency or unknown.

    The thresholds are the rules' defaults: iowait 20% is `iowait_bound`'s floor, busy 85% or
    idle under 5% is a spent CPU budget (`cpu_bound`), memory 90% is `memory_pressure`, and
    busy under 50% with iowait under 10% is `dependency_bound` (the work waits elsewhere).
    """
    if iowait is not None and iowait >= _IOWAIT_HIGH:
        return "io"
    if busy is not None and (busy >= _BUSY_SATURATED or (idle is not None and idle <= _IDLE_SPENT)):
        return "cpu"
    if mem is not None and mem >= _MEM_HIGH:
        return "memory"
    idle_cpu = busy is not None and busy < _DEPENDENCY_BUSY_MAX
    if idle_cpu and iowait is not None and iowait < _IOWAIT_LOW:
        return "dependency"
    return "unknown"


def held(condition: Mask, known: Mask, sustain: int, bridge: int) -> Mask:
    """Minutes at which `condition` has held `sustain` minutes, bridging short unknown gaps.

    A minute with unknown inputs keeps the state it had (for at most `bridge` minutes), so a
    missing datapoint neither starts nor ends a state on its own.
    """
    tri = np.where(known, condition.astype(np.float64), np.nan)
    return sustained(ffill(tri, bridge) == 1.0, sustain)


def mean_over(values: Series, first: int, last: int) -> float | None:
    """Mean of present values in [first, last] (clipped to the series), or None."""
    first, last = max(first, 0), min(last, len(values) - 1)
    if last < first:
        return None
    chunk = values[first : last + 1]
    chunk = chunk[~np.isnan(chunk)]
    # What chunk.mean() computes (a sum, then one division), without its Python-level wrapper.
    return float(np.add.reduce(chunk)) / len(chunk) if len(chunk) else None


def before_after(
    values: Series, start: int, end: int, lookback: int = 30
) -> tuple[float | None, float | None]:
    """(mean in the `lookback` minutes before the state, mean while it held)."""
    return mean_over(values, start - lookback, start - 1), mean_over(values, start, end)


def spans_to_findings(
    window: Window,
    kind: str,
    active: Mask,
    sustain: int,
    describe: Callable[[int, int], tuple[Severity, str, dict[str, EvidenceValue]]],
) -> list[Finding]:
    """One Finding per run of `active`; `start` is the first minute the condition held.

    `active` marks confirmed minutes (the condition has held `sustain` minutes), so a run's
    state began `sustain - 1` minutes before its first confirmed minute.
    """
    findings = []
    for first, last in runs(active):
        start = max(first - (sustain - 1), 0)
        severity, summary, evidence = describe(start, last)
        still_holds = last == window.length - 1
        findings.append(
            Finding(
                kind=kind,
                group=window.group,
                start=window.time_at(start),
                end=None if still_holds else window.time_at(last),
                severity=severity,
                summary=summary,
                evidence=evidence,
            )
        )
    return findings


def rounded(value: float | None, digits: int = 1) -> float | None:
    """A number rounded for evidence, None kept."""
    return None if value is None else round(value, digits)


def pct(value: float | None) -> str:
    """A percentage for a sentence: '15%' or 'n/a'."""
    return "n/a" if value is None else f"{value:.0f}%"


def num(value: float | None, digits: int = 0) -> str:
    """A number for a sentence with thousands separators, or 'n/a'."""
    return "n/a" if value is None else f"{value:,.{digits}f}"
