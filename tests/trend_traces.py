"""Generated traces for the trend detectors, with known truths."""

from __future__ import annotations

import numpy as np

from scaler.signals import Window
from tests.helpers import window_of


def leak(
    hours: float = 12,
    slope_per_hour: float = 1.0,
    sawtooth: float = 5.0,
    period: int = 20,
    seed: int = 0,
    start_pct: float = 40.0,
) -> Window:
    """Memory climbing `slope_per_hour` under a GC saw-tooth of `sawtooth` % every `period` min."""
    t = np.arange(int(hours * 60))
    return _under_gc(start_pct + slope_per_hour * t / 60, sawtooth, period, seed)


def _under_gc(level: np.ndarray, sawtooth: float, period: int, seed: int) -> Window:
    """`level` (one value a minute) under a GC saw-tooth, with a little measurement noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(len(level))
    mem = level + sawtooth * (t % period) / period + rng.normal(0, 0.3, len(t))
    return window_of({"mem_used": mem})


def spikes(
    hours: float = 12,
    base: float = 60.0,
    peak: float = 95.0,
    every: int = 30,
    width: int = 2,
    seed: int = 1,
) -> Window:
    """Flat memory with `width`-minute spikes to `peak` every `every` minutes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(hours * 60))
    mem = base + rng.normal(0, 0.5, len(t))
    mem[(t % every) < width] = peak
    return window_of({"mem_used": mem})


def latency(
    hours: float = 6,
    first_s: float = 0.009,
    last_s: float = 0.146,
    noise: float = 0.15,
    seed: int = 2,
) -> Window:
    """Time per message growing linearly from `first_s` to `last_s` with relative noise."""
    rng = np.random.default_rng(seed)
    n = int(hours * 60)
    truth = np.linspace(first_s, last_s, n)
    return window_of({"work_latency": truth * (1 + rng.normal(0, noise, n))})


def level_shift(
    hours: float = 12,
    at_hour: float = 4.0,
    before: float = 40.0,
    after: float = 58.0,
    sawtooth: float = 5.0,
    period: int = 20,
    seed: int = 5,
) -> Window:
    """A deploy raises memory from `before` to `after` at `at_hour`; flat on both sides."""
    t = np.arange(int(hours * 60))
    return _under_gc(np.where(t < at_hour * 60, before, after), sawtooth, period, seed)


def leak_with_restarts(
    hours: float = 72,
    slope_per_hour: float = 1.0,
    restart_every_hours: float = 16.0,
    sawtooth: float = 5.0,
    period: int = 20,
    seed: int = 6,
    start_pct: float = 40.0,
) -> Window:
    """A leak whose process restarts every `restart_every_hours`, resetting memory to the start."""
    since_restart = np.arange(int(hours * 60)) % int(restart_every_hours * 60)
    return _under_gc(start_pct + slope_per_hour * since_restart / 60, sawtooth, period, seed)
