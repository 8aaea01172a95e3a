"""Each policy in the loop on a hand-checked case, and scaler's rails held on every tick."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from scaler.instances.catalog import bundled_catalog
from scaler.sim.loop import run_policy
from scaler.sim.scenario import Scenario, arrival_rates

# One worker runs the module, so its module-scoped fixture is made once.
pytestmark = pytest.mark.xdist_group("simulate_policies")

CATALOG = bundled_catalog()


def cpu_bound(steps: list[tuple[int, float]], **overrides: Any) -> Scenario:
    """4 m5.xlarge, no disk I/O, 0.24 CPU-s a message: 1,000 msg/min is 100% of an instance.

    No Poisson noise and no CloudWatch delay: a datapoint of minute m is read at minute m + 1.
    """
    base: dict[str, Any] = {
        "name": "hand-checked",
        "minutes": 150,
        "arrivals": {
            "kind": "steps",
            "steps": [{"at_minute": at, "rate": rate} for at, rate in steps],
        },
        "poisson": False,
        "mb_per_msg": 0,
        "metric_delay_minutes": (0, 0),
        "fleet": {"desired": 4, "min_size": 1, "max_size": 20},
        "tuning": {"cpu_scale_in": True},
    }
    return Scenario.model_validate({**base, **overrides})


def test_cpu_target_tracking_scales_out_after_exactly_three_minutes_above_target() -> None:
    # 2,000 msg/min on 4 instances is 50% CPU; from minute 60, 3,400 msg/min is 85%.
    s = cpu_bound([(0, 2000), (60, 3400)])
    world = run_policy(s, arrival_rates(s, None), "cpu-target-60", seed=1, catalog=CATALOG).world
    cpu = world.measured_cpu()
    above = np.flatnonzero(cpu > 60)
    assert above[0] == 60
    first = world.actions[0]
    # Datapoints of minutes 60, 61, 62 are all read by minute 63: the third is the alarm.
    assert first == (63, 4, math.ceil(4 * cpu[62] / 60))
    assert first[2] == 6


def test_cpu_target_tracking_respects_launch_delay_and_warmup() -> None:
    s = cpu_bound([(0, 2000), (60, 3400)], launch_minutes=3, warmup_minutes=5)
    world = run_policy(s, arrival_rates(s, None), "cpu-target-60", seed=1, catalog=CATALOG).world
    t, _, to = world.actions[0]
    size = world.rec["size"]
    assert size[t + 2] == 4  # still launching
    assert size[t + 3] == to  # in service after exactly the launch delay
    # The alarm stays high until the new instances serve, but warming capacity already counts:
    # nothing more is added, and nothing removed, before they are warm.
    later = [a for a in world.actions[1:] if a[0] < t + 3 + 5]
    assert later == []


def test_cpu_target_tracking_scales_in_after_fifteen_minutes_below_and_not_if_disabled() -> None:
    # 2,300 msg/min is 57.5% CPU, between the alarms (54% and 60%); from minute 60, 800
    # msg/min is 20%, below 90% of the target.
    s = cpu_bound([(0, 2300), (60, 800)])
    world = run_policy(s, arrival_rates(s, None), "cpu-target-60", seed=1, catalog=CATALOG).world
    assert world.actions[0][0] == 60 + 15
    assert world.actions[0][1:] == (4, 3)  # at most 10% (at least one) at a time
    off = s.model_copy(update={"tuning": s.tuning.model_copy(update={"cpu_scale_in": False})})
    still = run_policy(off, arrival_rates(off, None), "cpu-target-60", seed=1, catalog=CATALOG)
    assert still.world.actions == []


def test_the_fixed_fleet_raises_its_minimum_once() -> None:
    s = cpu_bound([(0, 2000)])
    world = run_policy(s, arrival_rates(s, None), "fixed", seed=1, catalog=CATALOG).world
    assert world.actions == [(0, 4, 10)]
    assert world.min_size == 10


def test_keda_scales_up_at_once_and_down_to_the_highest_of_five_minutes() -> None:
    # queueLength 500; a surge to 6,000 msg/min (4 instances sustain 4,000) and back.
    s = cpu_bound(
        [(0, 2000), (40, 6000), (80, 1500)], tuning={"keda_queue_length": 500, "cpu_scale_in": True}
    )
    world = run_policy(s, arrival_rates(s, None), "keda-queue-length", seed=1, catalog=CATALOG)
    rec, actions = world.world.rec, world.world.actions
    queued = rec["visible"] + rec["in_flight"]

    def raw(m: int, current: int) -> int:
        ratio = queued[m] / (500 * current)
        return current if abs(ratio - 1) <= 0.1 else math.ceil(ratio * current)

    ups = [a for a in actions if a[2] > a[1]]
    downs = [a for a in actions if a[2] < a[1]]
    assert ups and downs
    for t, before, after in ups:  # scale-up: the recommendation itself, the next minute
        assert after == min(raw(t - 1, before), 20)
    desired = rec["desired"]  # after each minute's action
    for t, _, after in downs:  # scale-down: to the highest recommendation of the last 5 minutes
        recent = [raw(m - 1, int(desired[m - 1])) for m in range(max(t - 4, 1), t + 1)]
        assert after == max(*recent, 1)


def test_the_oracle_keeps_zero_lateness_with_no_more_than_it_needs() -> None:
    s = cpu_bound([(0, 2000), (60, 3600), (100, 800)], minutes=160)
    world = run_policy(s, arrival_rates(s, None), "oracle", seed=1, catalog=CATALOG).world
    assert world.rec["oldest_age"].max() == 0
    # 3,600 msg/min at 1,000 msg/min an instance: 4 instances, never more.
    assert world.rec["billed"].max() == 4


RAILS: dict[str, Any] = {
    "max_step_count": 3,
    "max_step_percent": 50,
    "cooldown_seconds": 420,
    "scale_in_stabilization_minutes": 10,
}


@pytest.fixture(scope="module")
def scaler_run() -> Any:
    """scaler in the loop on a surge and its end: scale-out and scale-in both happen."""
    s = Scenario.model_validate(
        {
            "name": "rails",
            "minutes": 260,
            "arrivals": {
                "kind": "steps",
                "steps": [
                    {"at_minute": 0, "rate": 1600},
                    {"at_minute": 30, "rate": 3900, "ramp_minutes": 5},
                    {"at_minute": 150, "rate": 1000},
                ],
            },
            "fleet": {"desired": 8, "min_size": 5, "max_size": 18},
            "scaler": {"rails": RAILS, "max_size": 16},
        }
    )
    return s, run_policy(s, arrival_rates(s, None), "scaler", seed=2, catalog=CATALOG)


def test_scaler_in_the_loop_moves_both_ways(scaler_run: Any) -> None:
    _, run = scaler_run
    ups = [a for a in run.world.actions if a[2] > a[1]]
    downs = [a for a in run.world.actions if a[2] < a[1]]
    assert ups and downs, run.world.actions


def test_scaler_in_the_loop_obeys_its_rails_on_every_minute(scaler_run: Any) -> None:
    scenario, run = scaler_run
    actions = run.world.actions
    by_minute = {tick.minute: tick for tick in run.ticks}
    assert len(run.ticks) == scenario.minutes - 1  # a tick every minute but the first
    for i, (t, before, after) in enumerate(actions):
        # bounds: the group's [5, 18] and the policy's max 16
        assert 5 <= after <= 16
        # step: min(3, 50% of the current, rounded up)
        assert abs(after - before) <= min(3, math.ceil(before * 0.5))
        # cooldown: 420 s since the previous action
        if i:
            assert t - actions[i - 1][0] >= 7
        # stabilization: scale in no lower than any proposal of the last 10 minutes
        if after < before:
            seen = [
                by_minute[m].proposal
                for m in range(t - 10, t + 1)
                if m in by_minute and by_minute[m].proposal is not None
            ]
            assert all(after >= min(max(p, 5), 16) for p in seen)
            assert t >= 10
        # the decision that acted is the one recorded for that minute
        assert by_minute[t].decision.target == after
    # and no action while instances were still launching (a scaling activity in progress)
    for t, _, _ in actions:
        assert run.world.rec["billed"][t - 1] == run.world.rec["size"][t - 1]


def test_backlog_per_instance_scales_out_on_the_third_datapoint_above_target() -> None:
    # 4 instances sustain 4,000 msg/min; 6,000 from minute 40 grows the queue 2,000 a minute.
    s = cpu_bound(
        [(0, 3800), (40, 6000)],
        tuning={"backlog_per_instance": 1000},
        fleet={"desired": 4, "min_size": 4, "max_size": 20},  # no scale-in before the surge
    )
    world = run_policy(s, arrival_rates(s, None), "backlog-per-instance", seed=1, catalog=CATALOG)
    rec = world.world.rec
    per_instance = rec["visible"] / rec["size"]
    first_above = int(np.flatnonzero(per_instance > 1000)[0])
    t, before, after = world.world.actions[0]
    assert t == first_above + 3
    assert (before, after) == (4, math.ceil(4 * per_instance[t - 1] / 1000))


@pytest.mark.parametrize(
    ("rate", "added"),
    [
        (7000, 1),  # 3,000 left queued: 1x-3x the alarm of 2,000, +25% of 4
        (14000, 2),  # 10,000 left: 3x-10x, +50%
        (30000, 4),  # 26,000 left: 10x and more, +100%
    ],
)
def test_step_scaling_adds_by_how_far_the_queue_is_over_the_alarm(rate: float, added: int) -> None:
    # 4 instances sustain 4,000 msg/min; at minute 40 one minute of `rate` arrives.
    s = cpu_bound(
        [(0, 2000), (40, rate), (41, 2000)],
        tuning={"step_alarm_messages": 2000},
        fleet={"desired": 4, "min_size": 4, "max_size": 20},
    )
    world = run_policy(s, arrival_rates(s, None), "step-queue", seed=1, catalog=CATALOG).world
    ups = [a for a in world.actions if a[2] > a[1]]
    # minute 40's queue (what 4,000 msg/min left of `rate`) is read, and acted on, at minute 41
    assert ups[0] == (41, 4, 4 + added)
