"""Every span where the fleet falls behind gets a named bottleneck: CPU as a budget,
`dependency_bound`, and `backlog_growing`'s `bottleneck` evidence. Tables of cases."""

from __future__ import annotations

import numpy as np
import pytest

from scaler.backtest import run_backtest
from scaler.policy import parse_policy
from scaler.rules.backlog import BacklogGrowing
from scaler.rules.base import RuleContext
from scaler.rules.cpu import CpuBound
from scaler.rules.dependency import DependencyBound
from scaler.signals import Window
from tests.helpers import window_of

CTX = RuleContext()
MINUTES = 40


def _behind(**cpu: float) -> Window:
    """A fleet of 8 falling behind: 1,000 arrivals/min, 800 done, the queue growing 200/min."""
    series: dict[str, float | np.ndarray] = {
        "instances": 8,
        "queue_sent": 1000.0,
        "queue_deleted": 800.0,
        "queue_visible": np.arange(MINUTES) * 200.0,
        **cpu,
    }
    return window_of(series, length=MINUTES)


@pytest.mark.parametrize(
    ("cpu", "cpu_bound", "why"),
    [
        ({"cpu_user": 84, "cpu_iowait": 12}, True, "no idle left (100-84-12 = 4%): budget spent"),
        ({"cpu_user": 84, "cpu_iowait": 12, "cpu_idle": 1}, True, "cpu_idle reported at 1%"),
        ({"cpu_user": 80, "cpu_system": 6, "cpu_iowait": 5}, True, "busy = user+system = 86%"),
        ({"cpu_user": 70, "cpu_steal": 20}, True, "steal counts as busy (no iowait signal)"),
        ({"cpu_user": 90, "cpu_iowait": 2}, True, "the classic case still holds"),
        ({"cpu_user": 60, "cpu_iowait": 12}, False, "28% idle: CPU is not the limit"),
        ({"cpu_user": 84, "cpu_iowait": 12, "cpu_idle": 20}, False, "reported idle wins"),
        ({"cpu_user": 20, "cpu_iowait": 60}, False, "waiting on disk, not CPU"),
    ],
)
def test_cpu_bound_judges_cpu_as_a_budget(cpu: dict[str, float], cpu_bound: bool, why: str) -> None:
    """user + system + steal against idle, with documented fallbacks."""
    findings = CpuBound().evaluate(_behind(**cpu), CTX).findings
    assert bool(findings) is cpu_bound, why


@pytest.mark.parametrize(
    ("cpu", "found", "why"),
    [
        ({"cpu_user": 15, "cpu_iowait": 3}, True, "idle CPU, idle disk, falling behind"),
        ({"cpu_user": 15, "cpu_iowait": 3, "work_latency": 4.0}, True, "with latency evidence"),
        ({"cpu_user": 15, "cpu_iowait": 30}, False, "waiting on disk: iowait_bound's case"),
        ({"cpu_user": 90, "cpu_iowait": 3}, False, "CPU-bound, not a dependency"),
    ],
)
def test_dependency_bound_names_work_waiting_outside_the_instance(
    cpu: dict[str, float], found: bool, why: str
) -> None:
    """Throughput below arrivals while CPU is idle and iowait low: the work waits elsewhere."""
    rule = DependencyBound()
    findings = rule.evaluate(_behind(**cpu), CTX).findings
    assert bool(findings) is found, why
    if found:
        ev = findings[0].evidence
        assert ev["cpu_busy_after_pct"] == pytest.approx(cpu["cpu_user"])
        assert ev["throughput_msg_per_min"] == pytest.approx(800)
        if "work_latency" in cpu:
            assert ev["work_latency_after_s"] == pytest.approx(4.0)
        opinion = rule.recommend(findings[0], CTX)
        assert opinion is not None and "only if the dependency scales" in opinion.reason


def test_a_healthy_idle_fleet_is_not_dependency_bound() -> None:
    """Idle CPU with an empty queue and noisy rates is not waiting on anything."""
    rng = np.random.default_rng(1)
    window = window_of(
        {
            "instances": 8,
            "queue_sent": 600 + rng.normal(0, 20, MINUTES),
            "queue_deleted": 600 + rng.normal(0, 20, MINUTES),
            "queue_visible": 0.0,
            "cpu_user": 7.0,
            "cpu_iowait": 5.0,
        },
        length=MINUTES,
    )
    assert DependencyBound().evaluate(window, CTX).findings == []


@pytest.mark.parametrize(
    ("signals", "bottleneck", "missing"),
    [
        ({"cpu_user": 20, "cpu_iowait": 60}, "io", []),
        ({"cpu_user": 84, "cpu_iowait": 12}, "cpu", []),
        ({"cpu_user": 40, "cpu_iowait": 5, "mem_used": 95}, "memory", []),
        ({"cpu_user": 15, "cpu_iowait": 3}, "dependency", []),
        ({}, "unknown", ["cpu_user", "cpu_iowait", "cpu_idle", "mem_used"]),
        ({"cpu_user": 60}, "unknown", ["cpu_iowait", "cpu_idle", "mem_used"]),
    ],
)
def test_backlog_growing_always_names_its_bottleneck(
    signals: dict[str, float], bottleneck: str, missing: list[str]
) -> None:
    """`bottleneck` is cpu, io, memory, dependency, or unknown with the signals that would tell."""
    (finding,) = BacklogGrowing().evaluate(_behind(**signals), CTX).findings
    assert finding.evidence["bottleneck"] == bottleneck
    assert finding.evidence["bottleneck_missing"] == missing
    assert f"Bottleneck: {bottleneck}" in finding.summary


@pytest.mark.parametrize(
    ("cpu", "stepped"),
    [
        ({"cpu_user": 15, "cpu_iowait": 3}, True),  # dependency_bound: scale out in steps
        ({"cpu_user": 90, "cpu_iowait": 3}, False),  # CPU-bound: more instances help in full
    ],
)
def test_a_dependency_bound_fleet_is_sized_conservatively(
    cpu: dict[str, float], stepped: bool
) -> None:
    """While dependency_bound holds, scale-out is stepped (25% of 8 = 2) and the reason says so."""
    policy = parse_policy("groups: [{name: default, capacity: {per_instance_capacity: 100}}]")
    advice = run_backtest({"default": _behind(**cpu)}, policy)
    final = [r for r in advice.recommendations if r.desired_capacity is not None][-1]
    raw = final.evidence["raw_desired"]
    assert isinstance(raw, int) and raw > 10
    if stepped:
        assert final.desired_capacity == 10
        assert final.evidence["held_by"] == "dependency_bound"
        assert "more instances help only if the dependency" in final.reason
    else:
        assert final.desired_capacity == raw
