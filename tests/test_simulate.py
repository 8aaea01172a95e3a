"""The closed loop's world: conservation, launch delay, oldest-first scale-in, refresh, seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.control.settings import TypeChangeSettings
from scaler.instances.catalog import bundled_catalog
from scaler.sim.loop import run_policies, run_policy
from scaler.sim.replay_csv import write_replay
from scaler.sim.report import PolicyResult, summarize
from scaler.sim.scenario import Scenario, arrival_rates, load_scenario
from scaler.sim.scenarios import incident
from scaler.sim.world import World

CATALOG = bundled_catalog()


def scenario(**overrides: Any) -> Scenario:
    """A small incident-like scenario; tests override what they check."""
    base: dict[str, Any] = {
        "name": "test",
        "minutes": 240,
        "arrivals": {
            "kind": "steps",
            "steps": [
                {"at_minute": 0, "rate": 1600},
                {"at_minute": 30, "rate": 3900},
                {"at_minute": 150, "rate": 1600},
            ],
        },
        "fleet": {"desired": 8, "min_size": 2, "max_size": 40},
    }
    return Scenario.model_validate({**base, **overrides})


@pytest.mark.parametrize(
    "policy",
    ["cpu-target-60", "backlog-per-instance", "step-queue", "keda-queue-length", "fixed", "oracle"],
)
def test_messages_in_equal_done_plus_queued_every_minute(policy: str) -> None:
    s = scenario()
    run = run_policy(s, arrival_rates(s, None), policy, seed=3, catalog=CATALOG)
    rec = run.world.rec
    arrived = np.cumsum(rec["arrivals"])
    done = np.cumsum(rec["done"])
    queued = rec["visible"] + rec["in_flight"]
    np.testing.assert_allclose(arrived, done + queued, rtol=0, atol=1e-6)
    assert (rec["visible"] >= 0).all()
    assert (rec["in_flight"] >= 0).all()


def test_a_launched_instance_serves_only_after_the_launch_delay() -> None:
    s = scenario(launch_minutes=3)
    world = World(s, arrival_rates(s, None), seed=1, catalog=CATALOG)
    for _ in range(10):
        world.step()
    world.set_desired(12)
    for _ in range(5):
        world.step()
    size = world.rec["size"]
    assert list(size[9:15]) == [8, 8, 8, 8, 12, 12]
    assert list(world.rec["billed"][9:11]) == [8, 12]  # pending instances are billed


def test_scale_in_terminates_the_oldest_instances_which_spent_their_burst() -> None:
    s = scenario(arrivals={"kind": "constant", "rate": 3900}, poisson=False)
    world = World(s, arrival_rates(s, None), seed=1, catalog=CATALOG)
    for _ in range(90):
        world.step()
    world.set_desired(12)  # 4 new instances, launched at minute 90 with full buckets
    world.step()
    world.set_desired(6)  # 6 of the 8 original instances go
    assert [(c.count, c.launched) for c in world.cohorts] == [(2, -10_000), (4, 90)]
    old, new = world.cohorts
    full = new.facts.ebs_max_mb_s - new.facts.ebs_baseline_mb_s
    assert new.bucket_mb == pytest.approx(full * 1800)
    assert old.bucket_mb < 0.1 * new.bucket_mb  # 90 minutes at 3,900 msg/min spent it


@pytest.mark.parametrize(
    ("desired", "min_healthy", "batch"),
    [(20, 90, 2), (10, 90, 1), (10, 50, 5), (3, 100, 1)],
)
def test_a_refresh_replaces_batches_that_keep_min_healthy_in_service(
    desired: int, min_healthy: int, batch: int
) -> None:
    s = scenario(
        fleet={"desired": desired, "min_size": 1, "max_size": 40},
        arrivals={"kind": "constant", "rate": 100},
        minutes=600,
    )
    world = World(s, arrival_rates(s, None), seed=1, catalog=CATALOG, hot_io_moved=True)
    settings = TypeChangeSettings(
        apply=True, min_healthy_percentage=min_healthy, checkpoint_percentages=[100]
    )
    world.start_refresh("m5d.xlarge", settings)
    assert world.refresh is not None and world.refresh.batch == batch
    while world.refresh is not None and world.t < 599:
        world.step()
    assert world.refresh is None, "the refresh never finished"
    assert world.launch_facts.instance_type == "m5d.xlarge"
    assert {c.facts.instance_type for c in world.cohorts} == {"m5d.xlarge"}
    assert world.total() == desired
    # While it ran, in-service instances never fell below desired minus one batch.
    ran = world.rec["size"][: world.t]
    assert ran.min() >= desired - batch


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    s = scenario(minutes=120)
    rates = arrival_rates(s, None)
    a = run_policy(s, rates, "keda-queue-length", seed=5, catalog=CATALOG).world
    b = run_policy(s, rates, "keda-queue-length", seed=5, catalog=CATALOG).world
    c = run_policy(s, rates, "keda-queue-length", seed=6, catalog=CATALOG).world
    for key in a.rec:
        np.testing.assert_array_equal(a.rec[key], b.rec[key])
    assert a.actions == b.actions
    assert not np.array_equal(a.rec["arrivals"], c.rec["arrivals"])


def test_cloudwatch_hides_datapoints_that_have_not_arrived_yet() -> None:
    s = scenario(metric_delay_minutes=(2, 2), minutes=60)
    world = World(s, arrival_rates(s, None), seed=1, catalog=CATALOG)
    for _ in range(40):
        world.step()
    window = world.cloudwatch_window(40, 180, "g")
    visible = window.series["queue_visible"]
    assert window.length == 180
    assert np.isnan(visible[:140]).all()  # before the run: an empty grid, as GetMetricData
    present = np.flatnonzero(~np.isnan(visible))
    # minute m arrives at m + 1 + 2: at minute 40 the newest is minute 37
    assert present[-1] == 140 + 37


def test_replay_arrivals_are_the_files_queue_sent(tmp_path: Path) -> None:
    trace = incident(minutes=90)
    with (tmp_path / "trace.csv").open("w") as stream:
        write_replay([trace.window], stream)
    (tmp_path / "s.yaml").write_text(
        "name: replayed\nminutes: 120\narrivals: {kind: replay, file: trace.csv}\n"
        "fleet: {desired: 8}\n"
    )
    scenario_, rates = load_scenario(str(tmp_path / "s.yaml"))
    sent = trace.window.series["queue_sent"]
    np.testing.assert_array_equal(rates[:90], sent)
    np.testing.assert_array_equal(rates[90:], sent[:30])  # a short file repeats
    assert scenario_.name == "replayed"


@pytest.mark.parametrize(
    ("arrivals", "expect"),
    [
        ({"kind": "constant", "rate": 5}, [5, 5, 5, 5, 5, 5]),
        (
            {"kind": "steps", "steps": [{"at_minute": 0, "rate": 1}, {"at_minute": 2, "rate": 9}]},
            [1, 1, 9, 9, 9, 9],
        ),
        (
            {
                "kind": "steps",
                "steps": [
                    {"at_minute": 0, "rate": 0},
                    {"at_minute": 1, "rate": 8, "ramp_minutes": 4},
                ],
            },
            [0, 2, 4, 6, 8, 8],
        ),
    ],
)
def test_arrival_shapes(arrivals: dict[str, Any], expect: list[float]) -> None:
    s = scenario(minutes=30, arrivals=arrivals)
    np.testing.assert_allclose(arrival_rates(s, None)[:6], expect)


@settings(max_examples=40, deadline=None)
@given(
    rates=st.lists(st.floats(0, 20_000), min_size=30, max_size=30),
    moves=st.lists(st.tuples(st.integers(0, 29), st.integers(0, 50)), max_size=8),
    hot_io=st.booleans(),
)
def test_conservation_and_bounds_hold_whatever_the_load_and_actions(
    rates: list[float], moves: list[tuple[int, int]], hot_io: bool
) -> None:
    s = scenario(minutes=30, poisson=False, metric_delay_minutes=(0, 3))
    world = World(s, np.asarray(rates), seed=1, catalog=CATALOG, hot_io_moved=hot_io)
    at = dict(moves)
    for t in range(30):
        if t in at:
            world.set_desired(at[t])
        if t == 10:
            world.start_refresh("m5d.xlarge", TypeChangeSettings(apply=True))
        world.step()
        assert s.fleet.min_size <= world.desired <= s.fleet.max_size
    rec = world.rec
    np.testing.assert_allclose(
        np.cumsum(rec["arrivals"]),
        np.cumsum(rec["done"]) + rec["visible"] + rec["in_flight"],
        rtol=1e-9,
        atol=1e-6,
    )
    assert (rec["size"] <= rec["billed"]).all()
    assert ((rec["balance"] >= 0) & (rec["balance"] <= 1)).all()


def test_policies_side_by_side_give_what_they_give_one_after_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """run_policies forks one worker a core; one core (or no fork) runs them in turn: same."""
    scenario, rates = load_scenario("flash-crowd", minutes=90)
    names = ["keda-queue-length", "scaler", "fixed"]

    def results() -> list[PolicyResult]:
        runs = run_policies(scenario, rates, names, seed=3, catalog=bundled_catalog())
        return [summarize(run, scenario) for run in runs]

    side_by_side = results()
    monkeypatch.setattr("scaler.sim.loop.os.cpu_count", lambda: 1)
    assert results() == side_by_side
    assert [r.policy for r in side_by_side] == names
