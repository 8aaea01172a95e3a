"""What a closed-loop run comes to: per-policy figures, the targets, text, JSON and a plot.

`scaler simulate` calls `summarize` on each run, then `render_text`, `to_json` or `plot`.
matplotlib (Agg) is imported only inside `plot`, so nothing else pays for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from scaler.fileio import write_atomically
from scaler.sim.loop import Run
from scaler.sim.scenario import Scenario

__all__ = [
    "FLAP_MINUTES",
    "PolicyResult",
    "SimulationReport",
    "plot",
    "render_text",
    "reversals",
    "summarize",
    "targets",
    "to_json_dict",
]

#: Two capacity changes in opposite directions this close together are a reversal (a flap).
FLAP_MINUTES = 30


class PolicyResult(BaseModel):
    """One policy's figures on one scenario (the JSON's `results` items, in this order)."""

    model_config = ConfigDict(frozen=True)

    policy: str
    peak_backlog: int
    peak_age_s: int
    p95_age_s: int
    minutes_over_page: int
    drain_minutes: int | None
    instance_hours: float
    cost_usd: float
    actions: int
    reversals: int


class SimulationReport(BaseModel):
    """Every policy's result on one scenario: the object `--format json` prints."""

    model_config = ConfigDict(frozen=True)

    scenario: str
    page_threshold_s: float
    results: list[PolicyResult]

    def result(self, policy: str) -> PolicyResult | None:
        """The named policy's result, if it ran."""
        return next((r for r in self.results if r.policy == policy), None)


def reversals(actions: Sequence[tuple[int, int, int]], within: int = FLAP_MINUTES) -> int:
    """Capacity changes that undo the direction of the previous one within `within` minutes."""
    count = 0
    for (t0, a0, b0), (t1, a1, b1) in itertools.pairwise(actions):
        if t1 - t0 <= within and (b0 - a0) * (b1 - a1) < 0:
            count += 1
    return count


def summarize(run: Run, scenario: Scenario) -> PolicyResult:
    """The figures of one run."""
    rec = run.world.rec
    age, backlog = rec["oldest_age"], rec["backlog"]
    return PolicyResult(
        policy=run.policy,
        peak_backlog=round(float(backlog.max())),
        peak_age_s=round(float(age.max())),
        p95_age_s=round(float(np.percentile(age, 95))),
        minutes_over_page=int((age > scenario.page_threshold_s).sum()),
        drain_minutes=_drain_minutes(backlog, rec["arrivals"], scenario),
        instance_hours=round(float(rec["billed"].sum()) / 60, 1),
        cost_usd=round(float(rec["cost"].sum()), 2),
        actions=len(run.world.actions) + len(run.world.refreshes),
        reversals=reversals(run.world.actions),
    )


def _drain_minutes(backlog: np.ndarray, arrivals: np.ndarray, scenario: Scenario) -> int | None:
    """Minutes from the surge's end (or the peak backlog) until less than a minute is queued."""
    start = (
        scenario.surge_end_minute
        if scenario.surge_end_minute is not None
        else int(np.argmax(backlog))
    )
    drained = np.flatnonzero(backlog[start:] <= np.maximum(arrivals[start:], 1.0))
    return int(drained[0]) if len(drained) else None


def targets(report: SimulationReport, days: float) -> list[str]:
    """The issue's targets that this run can check, each marked met or NOT met."""
    lines: list[str] = []
    cpu, scaler = report.result("cpu-target-60"), report.result("scaler")
    oracle, typed = report.result("oracle"), report.result("scaler+type")

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    if cpu is not None and report.scenario == "incident":
        lines.append(
            f"cpu-target-60 reproduces the incident (backlog grows, no scale-out): "
            f"{mark(cpu.peak_backlog > 0 and cpu.actions == 0 and cpu.minutes_over_page > 0)}"
        )
    if cpu is not None and scaler is not None:
        allowed = cpu.minutes_over_page * 0.1
        ok = scaler.minutes_over_page == 0 or scaler.minutes_over_page <= allowed
        lines.append(
            f"scaler minutes over the page threshold {scaler.minutes_over_page} vs "
            f"cpu-target-60 {cpu.minutes_over_page} (zero or >= 90% fewer): {mark(ok)}"
        )
    if scaler is not None and oracle is not None and oracle.instance_hours > 0:
        ratio = scaler.instance_hours / oracle.instance_hours
        lines.append(
            f"scaler instance-hours {ratio:.2f}x the oracle's (<= 1.25x): {mark(ratio <= 1.25)}"
        )
    if scaler is not None and typed is not None and report.scenario == "incident":
        lines.append(
            f"scaler+type ${typed.cost_usd:.2f} vs scaler ${scaler.cost_usd:.2f} (cheaper): "
            f"{mark(typed.cost_usd < scaler.cost_usd)}"
        )
    if days < 1:
        return lines
    flapping = [r.policy for r in report.results if r.reversals / days > 1]
    lines.append(
        "no policy flaps (more than 1 reversal a day): "
        + (mark(True) if not flapping else f"{mark(False)} ({', '.join(flapping)})")
    )
    return lines


def render_text(report: SimulationReport, scenario: Scenario) -> str:
    """The comparison table, reversals per day and the targets, for people."""
    days = scenario.minutes / 1440
    head = (
        f"{'policy':<22}{'peak backlog':>13}{'peak age':>10}{'p95 age':>9}{'min>page':>9}"
        f"{'drain':>7}{'inst-h':>8}{'cost $':>9}{'actions':>8}{'rev':>5}{'rev/day':>8}"
    )
    lines = [
        f"scenario {scenario.name}: {scenario.description or 'no description'} "
        f"({scenario.minutes / 60:g} h, "
        f"page when the oldest message is over {scenario.page_threshold_s / 60:g} min)",
        head,
        "-" * len(head),
    ]
    for r in report.results:
        drain = "never" if r.drain_minutes is None else f"{r.drain_minutes}m"
        lines.append(
            f"{r.policy:<22}{r.peak_backlog:>13,}{_minutes(r.peak_age_s):>10}"
            f"{_minutes(r.p95_age_s):>9}{r.minutes_over_page:>9}{drain:>7}"
            f"{r.instance_hours:>8.1f}{r.cost_usd:>9.2f}{r.actions:>8}{r.reversals:>5}"
            f"{r.reversals / days:>8.1f}"
        )
    checked = targets(report, days)
    if checked:
        lines += ["", "targets:", *(f"  {line}" for line in checked)]
    return "\n".join(lines)


def _minutes(seconds: int) -> str:
    return f"{seconds / 60:.0f}m"


def plot(runs: Sequence[Run], scenario: Scenario, path: Path) -> None:
    """Per-policy timelines of backlog, oldest age and fleet size on shared axes, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(11, 8))
    hours = np.arange(scenario.minutes) / 60
    panels: list[tuple[str, str, float]] = [
        ("backlog", "backlog (messages)", 1.0),
        ("oldest_age", "oldest message (min)", 1 / 60),
        ("billed", "instances", 1.0),
    ]
    for ax, (key, label, scale) in zip(axes, panels, strict=True):
        for run in runs:
            ax.plot(hours, run.world.rec[key] * scale, label=run.policy, linewidth=1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].axhline(scenario.page_threshold_s / 60, color="red", linestyle="--", linewidth=0.8)
    axes[-1].set_xlabel("hours since start")
    axes[0].legend(loc="upper left", fontsize=7, ncol=3)
    axes[0].set_title(f"scaler simulate: {scenario.name}")
    fig.tight_layout()
    try:
        write_atomically(path, lambda stream: fig.savefig(stream, format="png", dpi=100))
    finally:
        plt.close(fig)


def to_json_dict(report: SimulationReport) -> dict[str, Any]:
    """The JSON object of the issue's shape."""
    return report.model_dump(mode="json")
