"""Capacity from the backlog: the formula's worked examples and the rails around it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.capacity import Basis, CapacitySettings, plan_capacity, required_instances
from scaler.instances.catalog import InstanceFacts, bundled_catalog
from tests.helpers import window_of

M5_XLARGE = bundled_catalog().require("m5.xlarge")
MB = 1_000_000


@pytest.mark.parametrize(
    ("arrivals", "backlog", "drain", "per_instance", "utilization", "expected"),
    [
        # The README's worked example: the throttled crash-report fleet.
        (3900, 26_000, 30, 143.75 * 60 / 40, 0.9, 25),
        (1600, 0, 30, 200, 1.0, 8),  # exactly at capacity: no rounding up
        (1601, 0, 30, 200, 1.0, 9),  # one message over: one more instance
        (0, 6000, 30, 100, 1.0, 2),  # only the backlog, drained in 30 minutes
        (0, 0, 30, 100, 0.9, 0),  # truly idle (data present and zero)
    ],
)
def test_required_instances_worked_examples(
    arrivals: float,
    backlog: float,
    drain: float,
    per_instance: float,
    utilization: float,
    expected: int,
) -> None:
    """The formula gives the hand-computed instance counts."""
    assert required_instances(arrivals, backlog, drain, per_instance, utilization) == expected


def _incident_window(
    minutes: int = 20, *, deleted_pi: float = 487.5, mb_pi: float = 325.0
) -> dict[str, float]:
    """A fleet of 8 reading `mb_pi` MB/s per instance while keeping up with arrivals."""
    return {
        "instances": 8,
        "queue_sent": deleted_pi * 8,
        "queue_deleted": deleted_pi * 8,
        "queue_visible": 0,
        "cpu_user": 48.0,
        "ebs_read_bytes": mb_pi * MB * 60,
    }


@dataclass(frozen=True)
class Case:
    """One row: a steady fleet, the settings, and the decision its last minute must get."""

    rule: str
    series: dict[str, float]
    settings: CapacitySettings
    desired: int
    length: int = 10
    min_size: int = 1
    max_size: int = 100
    facts: InstanceFacts | None = None
    basis: Basis | None = None  # checked when given, like each field below
    per_instance: float | None = None
    raw: int | None = None
    held_by: str | None = None
    reason: tuple[str, ...] = ()  # phrases the reason must contain


CASES = [
    Case("a fleet keeping up only on burst credits is sized on the EBS baseline, not the 8 it runs",
         _incident_window(), CapacitySettings(target_utilization=1.0),
         math.ceil(3900 / (143.75 * 60 / 40)), length=20, facts=M5_XLARGE,
         basis=Basis.EBS_BYTES, per_instance=143.75 * 60 / 40,
         reason=("EBS baseline 143.75 MB/s", "not its 593.75 MB/s burst")),
    # 3900 / 863 = 4.5 -> 5; lower advice has held 20 minutes, past the 5-minute window.
    Case("without instance facts, CPU headroom bounds a keeping-up fleet",
         _incident_window(), CapacitySettings(target_utilization=1.0), 5, length=20,
         basis=Basis.CPU, per_instance=487.5 * 85 / 48),
    Case("with a standing backlog, what an instance does now is what it can do",
         {"instances": 4, "queue_sent": 1000, "queue_deleted": 800, "queue_visible": 5000},
         CapacitySettings(target_utilization=1.0, drain_minutes=50),
         math.ceil((1000 + 5000 / 50) / 200), basis=Basis.MEASURED),
    Case("desired within 10% of current is held at current",
         {"instances": 10, "queue_sent": 1050, "queue_deleted": 1050, "queue_visible": 0},
         CapacitySettings(per_instance_capacity=100, target_utilization=1.0), 10,
         raw=11, held_by="tolerance"),
    Case("the advice never leaves [min, max], and says which bound held it",
         {"instances": 10, "queue_sent": 10_000, "queue_deleted": 10_000, "queue_visible": 0},
         CapacitySettings(per_instance_capacity=100), 40, length=5, min_size=2, max_size=40,
         held_by="max_size"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_steady_fleet_decisions(case: Case) -> None:
    """Each row: a fleet steady for `length` minutes, and the decision at its last minute."""
    plan = plan_capacity(
        window_of(case.series, length=case.length),
        case.settings,
        min_size=case.min_size,
        max_size=case.max_size,
        facts=case.facts,
    )
    decision = plan.at(case.length - 1)
    assert decision.desired == case.desired
    if case.basis is not None:
        assert decision.basis is case.basis
    if case.per_instance is not None:
        assert decision.per_instance_msg_per_min == pytest.approx(case.per_instance)
    if case.raw is not None:
        assert decision.raw == case.raw
    if case.held_by is not None:
        assert decision.held_by == case.held_by
    assert [phrase for phrase in case.reason if phrase not in decision.reason] == []


def test_missing_queue_data_gives_no_opinion_and_never_scales_in() -> None:
    """When queue data stops, advice stops; it never reads as idle."""
    visible = np.zeros(30)
    visible[15:] = np.nan
    series = {
        "instances": 10,
        "queue_sent": 0.0,
        "queue_deleted": 0.0,
        "queue_visible": visible,
        "cpu_user": 2.0,
    }
    plan = plan_capacity(window_of(series), CapacitySettings(), min_size=1, max_size=100)
    assert math.isnan(plan.desired[29])
    assert plan.at(29).desired is None
    assert "missing or stale" in plan.at(29).reason
    assert plan.desired[14] == 1  # before the gap, an idle queue (present, zero) went to min


def test_scale_in_waits_for_the_stabilization_window() -> None:
    """Lower advice is taken only after it has held for the stabilization window."""
    sent = np.concatenate((np.full(20, 1000.0), np.full(20, 200.0)))
    series = {"instances": 10, "queue_sent": sent, "queue_deleted": sent, "queue_visible": 0}
    s = CapacitySettings(
        per_instance_capacity=100,
        target_utilization=1.0,
        measure_minutes=1,
        scale_in_stabilization_minutes=5,
    )
    plan = plan_capacity(window_of(series), s, min_size=1, max_size=100)
    assert plan.at(20).raw == 2
    assert [plan.at(i).desired for i in range(20, 26)] == [10, 10, 10, 10, 2, 2]
    assert [plan.at(i).desired for i in range(4)] == [10, 10, 10, 10]  # window too short yet
    assert plan.at(21).held_by == "scale_in_stabilization"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.floats(0, 1e5), st.just(float("nan"))), min_size=1, max_size=40),
    st.lists(st.one_of(st.floats(0, 1e5), st.just(float("nan"))), min_size=1, max_size=40),
    st.integers(0, 50),
    st.integers(0, 20),
    st.integers(1, 60),
)
def test_advice_stays_within_bounds_and_holds_on_missing_data(
    sent: list[float], visible: list[float], instances: int, lo: int, span: int
) -> None:
    """For any data, advice is within [min, max] and never below current on missing data."""
    n = min(len(sent), len(visible))
    hi = lo + span
    series = {
        "instances": instances,
        "queue_sent": sent[:n],
        "queue_deleted": sent[:n],
        "queue_visible": visible[:n],
        "cpu_user": 30.0,
    }
    plan = plan_capacity(window_of(series, length=n), CapacitySettings(), min_size=lo, max_size=hi)
    present = plan.desired[~np.isnan(plan.desired)]
    assert ((present >= lo) & (present <= hi)).all()
    missing = np.isnan(np.asarray(visible[:n]))
    for i in np.flatnonzero(missing):
        d = plan.desired[i]
        assert math.isnan(d) or d >= min(max(instances, lo), hi)
