"""The per-minute arrays around the plan: concurrency sizing, the falling-balance guard, and
the rails (clamp, HPA tolerance, stabilization). Pure numpy over a window; `plan.py` calls them.
"""

from __future__ import annotations

import numpy as np

from scaler.capacity.settings import CapacitySettings
from scaler.numeric import Mask, ffill, rolling_max
from scaler.signals import Series, Signal, Window

__all__ = ["apply_rails", "balance_falling", "concurrency_need"]


def balance_falling(window: Window, minutes: int) -> Mask:
    """Minutes at which an EBS burst balance is lower than `minutes` ago (5-minute data)."""
    falling = np.zeros(window.length, dtype=bool)
    for name in (Signal.EBS_BYTE_BALANCE, Signal.EBS_IO_BALANCE):
        filled = window.filled(name, 5)
        if filled is None:
            continue
        before = np.concatenate((np.full(minutes, np.nan), filled[:-minutes]))[: window.length]
        with np.errstate(invalid="ignore"):
            falling |= (filled < before - 0.5) & (filled < 100.0)
    return falling


def concurrency_need(
    s: CapacitySettings,
    backlog: Series,
    in_flight: Series,
    current: Series,
    measured: Series,
    saturated: Mask,
) -> tuple[Mask, Series, Series]:
    """(minutes sized on concurrency, messages per instance, instances needed) as KEDA does.

    Messages per instance come from the policy, else from what each instance held in flight
    while a backlog stood (every worker busy). `auto` uses concurrency where completions per
    instance per minute are below the policy's threshold and there is work to hold.
    """
    n = len(backlog)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if s.messages_per_instance is not None:
            per = np.full(n, s.messages_per_instance)
        else:
            held = np.where(saturated & (current > 0), in_flight / current, np.nan)
            per = ffill(held, n)  # the last busy reading stands until the next
        per = np.where(per > 0, per, np.nan)
        work = backlog + in_flight
        need = np.where(work == 0, 0.0, work / per)
        possible = ~np.isnan(need)
        if s.sizing == "concurrency":
            chosen = possible
        elif s.sizing == "auto":
            chosen = possible & (measured < s.concurrency_below_per_minute) & (work > 0)
        else:
            chosen = np.zeros(n, dtype=bool)
    return chosen, np.where(chosen, per, np.nan), need


def apply_rails(
    need: Series,
    raw: Series,
    current: Series,
    fresh: Mask,
    falling: Mask,
    stepped: Mask,
    s: CapacitySettings,
    lo: int,
    hi: int,
) -> Series:
    """Clamp, tolerance band, and scale-in stabilization (HPA: highest advice in window).

    The tolerance compares the usage ratio need / current *before* rounding up, as the HPA
    does (3 instances whose demand is worth 3.1 stay at 3). A minute without an opinion, or
    whose queue/instance datapoints were carried forward rather than reported, counts as +inf
    in the window, so missing data blocks scale-in; so does a window too short to hold the
    stabilization period, and so does a falling EBS burst balance.
    """
    clamped = _clamp(raw, lo, hi)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        within = np.abs(need / current - 1.0) <= s.tolerance + 1e-9
    candidate = np.where(within & (current >= lo) & (current <= hi), current, clamped)
    step = current + np.maximum(1.0, np.ceil(current * s.dependency_step_pct / 100.0))
    candidate = np.where(stepped & (candidate > current), np.minimum(candidate, step), candidate)
    blocking = np.where(np.isnan(candidate) | ~fresh | falling, np.inf, candidate)
    span = s.scale_in_stabilization_minutes
    padded = np.concatenate((np.full(span - 1, np.inf), blocking))
    highest_recent = rolling_max(padded, span)[span - 1 :]
    scale_in = candidate < current
    stabilized = np.where(scale_in, np.minimum(current, highest_recent), candidate)
    # Bounds win over everything, including holding a current size that is out of bounds.
    bounded = _clamp(stabilized, lo, hi)
    return np.where(np.isnan(raw) | np.isnan(current), np.nan, bounded)


def _clamp(values: Series, lo: float, hi: float) -> Series:
    """`np.clip(values, lo, hi)` (NaN stays NaN) without its Python-level argument handling."""
    return np.minimum(np.maximum(values, lo), hi)
