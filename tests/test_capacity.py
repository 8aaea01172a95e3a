"""Capacity from the backlog: the formula's worked examples and the rails around it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.capacity import Basis, CapacitySettings, plan_capacity, required_instances
from scaler.instances.catalog import bundled_catalog
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


def test_fleet_on_burst_is_sized_on_ebs_baseline_not_measured_throughput() -> None:
    """Keeping up only on burst credits still needs the instances the baseline sustains."""
    window = window_of(_incident_window(), length=20)
    plan = plan_capacity(
        window, CapacitySettings(target_utilization=1.0), min_size=1, max_size=100, facts=M5_XLARGE
    )
    decision = plan.at(19)
    assert decision.basis is Basis.EBS_BYTES
    assert decision.per_instance_msg_per_min == pytest.approx(143.75 * 60 / 40)
    assert decision.desired == math.ceil(3900 / (143.75 * 60 / 40))  # 19, not the 8 it runs
    assert (
        "EBS baseline 143.75 MB/s" in decision.reason
        and "not its 593.75 MB/s burst" in decision.reason
    )


def test_without_instance_facts_a_keeping_up_fleet_is_bounded_by_cpu() -> None:
    """With no EBS facts, CPU headroom bounds what an instance can do."""
    window = window_of(_incident_window(), length=20)
    plan = plan_capacity(window, CapacitySettings(target_utilization=1.0), min_size=1, max_size=100)
    decision = plan.at(19)
    assert decision.basis is Basis.CPU
    assert decision.per_instance_msg_per_min == pytest.approx(487.5 * 85 / 48)
    # 3900 / 863 = 4.5 -> 5; lower advice has held 20 minutes, past the 5-minute window.
    assert decision.desired == 5


def test_saturated_fleet_uses_measured_throughput() -> None:
    """With a standing backlog, what an instance does now is what it can do."""
    series = {"instances": 4, "queue_sent": 1000, "queue_deleted": 800, "queue_visible": 5000}
    plan = plan_capacity(
        window_of(series, length=10),
        CapacitySettings(target_utilization=1.0, drain_minutes=50),
        min_size=1,
        max_size=100,
    )
    decision = plan.at(9)
    assert decision.basis is Basis.MEASURED
    assert decision.desired == math.ceil((1000 + 5000 / 50) / 200)


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


def test_within_tolerance_band_nothing_changes() -> None:
    """Desired within 10% of current is held at current."""
    series = {"instances": 10, "queue_sent": 1050, "queue_deleted": 1050, "queue_visible": 0}
    plan = plan_capacity(
        window_of(series, length=10),
        CapacitySettings(per_instance_capacity=100, target_utilization=1.0),
        min_size=1,
        max_size=100,
    )
    assert plan.at(9).raw == 11 and plan.at(9).desired == 10
    assert plan.at(9).held_by == "tolerance"


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


def test_advice_is_clamped_to_bounds() -> None:
    """The advice never leaves [min, max], and says which bound held it."""
    series = {"instances": 10, "queue_sent": 10_000, "queue_deleted": 10_000, "queue_visible": 0}
    plan = plan_capacity(
        window_of(series, length=5),
        CapacitySettings(per_instance_capacity=100),
        min_size=2,
        max_size=40,
    )
    assert plan.at(4).desired == 40 and plan.at(4).held_by == "max_size"


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
