"""Closed-loop figures for `make bench`: a 7-day simulation of every policy, timed.

The target is under 10 s for all policies on this 2-core machine. The comparison policies cost
a fraction of that; scaler's two cost one live-tick evaluation (rules, capacity plan, ranking
on a 3-hour window) per controller tick, so the figure is printed per policy and per tick.
"""

from __future__ import annotations

import time

from scaler.instances.catalog import bundled_catalog
from scaler.sim.loop import run_policy
from scaler.sim.policies import POLICY_NAMES
from scaler.sim.scenario import load_scenario

__all__ = ["simulate_figures"]

TARGET_S = 10.0


def simulate_figures() -> list[str]:
    """Every policy on the diurnal week (its shipped tick interval), each timed once."""
    scenario, rates = load_scenario("diurnal-week")
    catalog = bundled_catalog()
    times: dict[str, float] = {}
    for name in POLICY_NAMES:
        t0 = time.perf_counter()
        run_policy(scenario, rates, name, seed=1, catalog=catalog)
        times[name] = time.perf_counter() - t0
    total = sum(times.values())
    ticks = scenario.minutes // scenario.tick_minutes
    per_tick_ms = (times["scaler"] + times["scaler+type"]) / (2 * ticks) * 1e3
    others = total - times["scaler"] - times["scaler+type"]
    verdict = "met" if total < TARGET_S else "NOT met"
    return [
        f"closed loop, 7 days ({scenario.minutes:,} minutes), every policy: {total:.1f} s "
        f"(target < {TARGET_S:g} s: {verdict})",
        f"  7 comparison policies together {others:6.2f} s",
        f"  scaler                          {times['scaler']:6.2f} s  "
        f"({ticks:,} ticks every {scenario.tick_minutes} min, {per_tick_ms:.1f} ms a tick)",
        f"  scaler+type                     {times['scaler+type']:6.2f} s",
        f"  at 1-minute ticks scaler would take about {per_tick_ms * scenario.minutes / 1e3:.0f} s "
        "a policy-week",
    ]
