"""Safety rails: each rail named when it holds, and properties over any proposals and settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.control import (
    GroupHistory,
    Observation,
    Rail,
    RailSettings,
    apply_rails,
    kill_switch_from_env,
)
from scaler.errors import PolicyError
from scaler.models import GroupState
from scaler.policy import parse_policy

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Defaults with the step limit out of the way, for tests of other rails.
WIDE = RailSettings(max_step_count=1000, max_step_percent=1000, cooldown_seconds=300)


def group(desired: int = 10, lo: int = 0, hi: int = 100, **extra: object) -> GroupState:
    """An ASG as AWS would report it."""
    return GroupState.model_validate(
        {
            "name": "workers",
            "desired": desired,
            "min_size": lo,
            "max_size": hi,
            "in_service": desired,
            **extra,
        }
    )


def watched(*proposals: int | None, minutes: int = 10, complete: bool = True) -> GroupHistory:
    """A history of one proposal per minute ending a minute before NOW (the last is newest)."""
    count = len(proposals)
    observations = tuple(
        Observation(at=NOW - timedelta(minutes=count - i), proposal=p, data_complete=complete)
        for i, p in enumerate(proposals)
    )
    assert count <= minutes or minutes == 0
    return GroupHistory(group="workers", observations=observations)


def steady(value: int, minutes: int = 10) -> GroupHistory:
    """A history where every tick of the last `minutes` proposed `value`."""
    return watched(*([value] * minutes))


def test_no_proposal_leaves_the_group_alone() -> None:
    """A tick without a proposal changes nothing and blames no rail."""
    d = apply_rails(
        None,
        group(),
        GroupHistory(group="workers"),
        WIDE,
        now=NOW,
        data_complete=False,
        kill_switch_env=False,
    )
    assert d.target is None
    assert d.held_by == []
    assert d.notes


def test_scale_out_within_every_rail_is_allowed() -> None:
    """A proposal above the current capacity inside every limit becomes the target as is."""
    d = apply_rails(
        12,
        group(10),
        GroupHistory(group="workers"),
        WIDE,
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
    )
    assert (d.target, d.held_by, d.current, d.proposal) == (12, [], 10, 12)


def test_proposal_equal_to_current_is_no_action() -> None:
    """The same capacity as now is not an action."""
    d = apply_rails(
        10, group(10), steady(10), WIDE, now=NOW, data_complete=True, kill_switch_env=False
    )
    assert d.target is None
    assert not d.changes


def test_policy_bounds_rail_caps_the_target() -> None:
    """A proposal above the policy's max_size is cut to it, naming policy_bounds."""
    d = apply_rails(
        50,
        group(10),
        steady(10),
        WIDE,
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
        policy_max=15,
    )
    assert d.target == 15
    assert d.held_by == [Rail.POLICY_BOUNDS]


def test_group_bounds_rail_wins_over_a_looser_policy() -> None:
    """The group's own max_size holds even when the policy allows more."""
    d = apply_rails(
        30,
        group(10, hi=20),
        steady(10),
        WIDE,
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
        policy_max=40,
    )
    assert d.target == 20
    assert d.held_by == [Rail.GROUP_BOUNDS]


def test_policy_min_raises_a_low_proposal() -> None:
    """A proposal under the policy's min_size is raised to it (here: no scale-in at all)."""
    d = apply_rails(
        2,
        group(10),
        steady(2),
        WIDE,
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
        policy_min=6,
    )
    assert d.target == 6
    assert Rail.POLICY_BOUNDS in d.held_by


def test_max_step_count_limits_a_big_scale_out() -> None:
    """A jump of 20 with max_step_count 4 steps by 4, naming max_step."""
    rails = RailSettings(max_step_count=4, max_step_percent=1000)
    d = apply_rails(
        30,
        group(10),
        GroupHistory(group="workers"),
        rails,
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
    )
    assert d.target == 14
    assert d.held_by == [Rail.MAX_STEP]


@pytest.mark.parametrize(("select", "expected"), [("min", 6), ("max", 14)])
def test_max_step_percent_and_select(select: str, expected: int) -> None:
    """50% of 4 is 2: 'min' takes the smaller of (10, 2), 'max' the larger, like HPA."""
    rails = RailSettings(max_step_count=10, max_step_percent=50, step_select=select)  # type: ignore[arg-type]
    d = apply_rails(
        20,
        group(4),
        GroupHistory(group="workers"),
        rails,
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
    )
    assert d.target == expected
    assert d.held_by == [Rail.MAX_STEP]


def test_percent_step_allows_one_instance_from_zero() -> None:
    """A group at zero may still start: the percent limit never drops below one instance."""
    rails = RailSettings(max_step_count=10, max_step_percent=50)
    d = apply_rails(
        5,
        group(0),
        GroupHistory(group="workers"),
        rails,
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
    )
    assert d.target == 1


def test_max_step_limits_scale_in_too() -> None:
    """Scale-in by 8 with a step of 3 stops at current - 3."""
    rails = RailSettings(max_step_count=3, max_step_percent=1000)
    d = apply_rails(
        2, group(10), steady(2), rails, now=NOW, data_complete=True, kill_switch_env=False
    )
    assert d.target == 7
    assert d.held_by == [Rail.MAX_STEP]


def test_cooldown_holds_any_action_after_a_recent_one() -> None:
    """An action 60 s ago with a 300 s cooldown blocks this tick's change, naming cooldown."""
    history = steady(10).model_copy(update={"last_action_at": NOW - timedelta(seconds=60)})
    d = apply_rails(
        20, group(10), history, WIDE, now=NOW, data_complete=True, kill_switch_env=False
    )
    assert d.target is None
    assert d.held_by == [Rail.COOLDOWN]
    assert "240s left" in " ".join(d.notes)


def test_cooldown_ends_after_its_length() -> None:
    """Exactly cooldown_seconds after the last action the group may change again."""
    history = steady(10).model_copy(update={"last_action_at": NOW - timedelta(seconds=300)})
    d = apply_rails(
        20, group(10), history, WIDE, now=NOW, data_complete=True, kill_switch_env=False
    )
    assert d.target == 20


def test_stabilization_scales_in_only_to_the_window_high() -> None:
    """Recent proposals of 8 keep a proposal of 4 from going below 8."""
    history = watched(3, 3, 3, 3, 3, 8, 8, 5, 5, 5)
    d = apply_rails(4, group(10), history, WIDE, now=NOW, data_complete=True, kill_switch_env=False)
    assert d.target == 8
    assert d.held_by == [Rail.SCALE_IN_STABILIZATION]


def test_stabilization_ignores_proposals_older_than_the_window() -> None:
    """A high proposal 8 minutes ago is outside a 5-minute window and does not hold."""
    history = watched(20, 20, 20, 4, 4, 4, 4, 4, 4, 4)
    d = apply_rails(4, group(10), history, WIDE, now=NOW, data_complete=True, kill_switch_env=False)
    assert d.target == 4
    assert d.held_by == []


def test_stabilization_blocks_scale_in_when_the_window_peak_is_current() -> None:
    """A proposal of 12 a minute ago (above current 10) means no scale-in now."""
    history = watched(4, 4, 4, 4, 4, 4, 4, 4, 4, 12)
    d = apply_rails(4, group(10), history, WIDE, now=NOW, data_complete=True, kill_switch_env=False)
    assert d.target is None
    assert Rail.SCALE_IN_STABILIZATION in d.held_by


def test_stabilization_needs_a_full_window_of_history() -> None:
    """Three minutes of history cannot stabilize a five-minute window: no scale-in yet."""
    d = apply_rails(
        4, group(10), watched(4, 4, 4), WIDE, now=NOW, data_complete=True, kill_switch_env=False
    )
    assert d.target is None
    assert d.held_by == [Rail.SCALE_IN_STABILIZATION]


def test_zero_stabilization_window_scales_in_at_once() -> None:
    """With scale_in_stabilization_minutes 0 a scale-in needs no history."""
    rails = WIDE.model_copy(update={"scale_in_stabilization_minutes": 0})
    d = apply_rails(
        4,
        group(10),
        GroupHistory(group="workers"),
        rails,
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
    )
    assert d.target == 4


def test_missing_data_blocks_scale_in_but_not_scale_out() -> None:
    """Incomplete data this tick holds a scale-in (missing_data) yet lets a scale-out through."""
    down = apply_rails(
        4, group(10), steady(4), WIDE, now=NOW, data_complete=False, kill_switch_env=False
    )
    up = apply_rails(
        14, group(10), steady(14), WIDE, now=NOW, data_complete=False, kill_switch_env=False
    )
    assert down.target is None
    assert down.held_by == [Rail.MISSING_DATA]
    assert up.target == 14


@pytest.mark.parametrize("gap_value", [None, "incomplete"])
def test_missing_data_inside_the_window_blocks_scale_in(gap_value: str | None) -> None:
    """A tick in the window with no proposal or incomplete data never reads as idle."""
    observations = list(steady(4).observations)
    hole = observations[-2]
    observations[-2] = (
        hole.model_copy(update={"proposal": None})
        if gap_value is None
        else hole.model_copy(update={"data_complete": False})
    )
    history = GroupHistory(group="workers", observations=tuple(observations))
    d = apply_rails(4, group(10), history, WIDE, now=NOW, data_complete=True, kill_switch_env=False)
    assert d.target is None
    assert d.held_by == [Rail.MISSING_DATA]


def test_a_gap_between_ticks_counts_as_missing_data() -> None:
    """A controller that did not run for 15 minutes has not watched the window: no scale-in."""
    old = Observation(at=NOW - timedelta(minutes=15), proposal=4, data_complete=True)
    history = GroupHistory(group="workers", observations=(old,))
    d = apply_rails(4, group(10), history, WIDE, now=NOW, data_complete=True, kill_switch_env=False)
    assert d.target is None
    assert d.held_by == [Rail.MISSING_DATA]


@pytest.mark.parametrize(("flag", "env"), [(True, False), (False, True), (True, True)])
def test_kill_switch_is_named_and_keeps_the_target(flag: bool, env: bool) -> None:
    """The policy flag or the env var marks the decision dry-run; the advice is still given."""
    rails = WIDE.model_copy(update={"kill_switch": flag})
    d = apply_rails(
        14, group(10), steady(10), rails, now=NOW, data_complete=True, kill_switch_env=env
    )
    assert d.kill_switch
    assert d.target == 14
    assert d.held_by == [Rail.KILL_SWITCH]


@pytest.mark.parametrize(
    ("value", "on"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("Off", False),
        ("1", True),
        ("true", True),
        ("yes", True),
        ("enabled", True),
    ],
)
def test_kill_switch_env_values(value: str | None, on: bool) -> None:
    """Only a clear 'off' value (or none) leaves the kill switch off; anything else is on."""
    environ = {} if value is None else {"SCALER_KILL_SWITCH": value}
    assert kill_switch_from_env(environ) is on


@pytest.mark.parametrize(
    ("extra", "rail"),
    [
        ({"instance_refresh_in_progress": True}, Rail.INSTANCE_REFRESH),
        ({"activities_in_progress": 2}, Rail.SCALING_ACTIVITY),
        ({"activity_checked": False}, Rail.SCALING_ACTIVITY),  # not read: never assumed idle
    ],
)
def test_running_activity_blocks_any_action(extra: dict[str, object], rail: Rail) -> None:
    """No action while an instance refresh or another scaling activity runs."""
    d = apply_rails(
        14,
        group(10, **extra),
        steady(10),
        WIDE,
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
    )
    assert d.target is None
    assert d.held_by == [rail]


def test_every_holding_rail_is_named_once() -> None:
    """Several rails at once are each named, in the order they applied."""
    rails = RailSettings(max_step_count=2, max_step_percent=1000, kill_switch=True)
    history = steady(10).model_copy(update={"last_action_at": NOW - timedelta(seconds=10)})
    d = apply_rails(
        90,
        group(10, hi=50),
        history,
        rails,
        now=NOW,
        data_complete=True,
        kill_switch_env=True,
        policy_max=60,
    )
    assert d.held_by == [
        Rail.KILL_SWITCH,
        Rail.POLICY_BOUNDS,
        Rail.GROUP_BOUNDS,
        Rail.MAX_STEP,
        Rail.COOLDOWN,
    ]
    assert d.target is None


def test_policy_reads_rails_and_state_settings() -> None:
    """The policy's rails: and state: blocks parse, and defaults are documented values."""
    policy = parse_policy(
        "groups:\n  - name: a\n    rails: {max_step_count: 2, kill_switch: true}\n"
        "state: {path: /var/lib/scaler/state.db}\n"
    )
    rails = policy.groups[0].rails
    assert (rails.max_step_count, rails.kill_switch, rails.scale_in_stabilization_minutes) == (
        2,
        True,
        5,
    )
    assert policy.state.path == "/var/lib/scaler/state.db"


def test_policy_rejects_an_unknown_rail_naming_the_valid_ones() -> None:
    """A typo in rails: names the field and lists the valid ones."""
    with pytest.raises(PolicyError, match=r"rails\.max_stepz.*valid: cooldown_seconds"):
        parse_policy("groups: [{name: a, rails: {max_stepz: 2}}]")


# --- properties -------------------------------------------------------------------------------


@dataclass
class _Sim:
    """A group driven tick by tick through the rails, as apply mode would drive it."""

    state: GroupState
    observations: list[Observation] = field(default_factory=list)
    last_action_at: datetime | None = None

    def history(self) -> GroupHistory:
        return GroupHistory(
            group="workers",
            observations=tuple(self.observations),
            last_action_at=self.last_action_at,
        )


def _allowed_step(current: int, rails: RailSettings) -> int:
    by_percent = max(1, math.ceil(current * rails.max_step_percent / 100))
    pick = min if rails.step_select == "min" else max
    return pick(rails.max_step_count, by_percent)


rail_settings = st.builds(
    RailSettings,
    max_step_count=st.integers(1, 20),
    max_step_percent=st.floats(1, 300),
    step_select=st.sampled_from(["min", "max"]),
    cooldown_seconds=st.integers(0, 400),
    scale_in_stabilization_minutes=st.integers(0, 8),
    max_observation_gap_seconds=st.integers(60, 900),
)
# Mostly ordinary ticks (a minute apart, full data, nothing running) with proposals drawn from a
# few levels, so long quiet runs (and so scale-ins) happen; holes, gaps and activities mixed in.
_mostly_true = st.integers(0, 9).map(lambda n: n > 0)


@st.composite
def ticks(draw: st.DrawFn) -> list[tuple[int | None, bool, int, bool]]:
    """A sequence of (proposal, data complete, seconds since previous tick, activity running)."""
    levels = draw(st.lists(st.integers(0, 40), min_size=1, max_size=3))
    tick = st.tuples(
        st.one_of(st.sampled_from(levels), st.sampled_from(levels), st.none()),
        _mostly_true,
        st.one_of(st.integers(55, 70), st.integers(55, 70), st.integers(1, 900)),
        _mostly_true.map(lambda ok: not ok),
    )
    return draw(st.lists(tick, min_size=5, max_size=40))


@st.composite
def bounded_groups(draw: st.DrawFn) -> tuple[GroupState, int | None, int | None]:
    """A group inside its own bounds, and policy bounds (maybe absent) that overlap them."""
    lo = draw(st.integers(0, 10))
    hi = draw(st.integers(max(lo, 1), 50))
    pmin = draw(st.one_of(st.none(), st.integers(lo, hi)))
    pmax = draw(st.one_of(st.none(), st.integers(max(pmin or lo, 1), hi)))
    plo, phi = pmin if pmin is not None else lo, pmax if pmax is not None else hi
    desired = draw(st.integers(plo, phi))
    state = GroupState(
        name="workers", desired=desired, min_size=lo, max_size=hi, in_service=desired
    )
    return state, pmin, pmax


@settings(max_examples=300, deadline=None)
@given(rail_settings, bounded_groups(), ticks(), st.booleans())
def test_rails_properties_over_any_sequence(
    rails: RailSettings,
    bounded: tuple[GroupState, int | None, int | None],
    sequence: list[tuple[int | None, bool, int, bool]],
    kill_env: bool,
) -> None:
    """Bounds, step limit, cooldown, stabilization and missing data hold on every tick."""
    state, pmin, pmax = bounded
    lo = max(state.min_size, pmin if pmin is not None else 0)
    hi = min(state.max_size, pmax if pmax is not None else state.max_size)
    sim = _Sim(state=state)
    now = NOW
    for proposal, complete, gap, busy in sequence:
        now += timedelta(seconds=gap)
        current = sim.state.model_copy(update={"activities_in_progress": int(busy)})
        d = apply_rails(
            proposal,
            current,
            sim.history(),
            rails,
            now=now,
            data_complete=complete,
            kill_switch_env=kill_env,
            policy_min=pmin,
            policy_max=pmax,
        )
        before = current.desired
        assert d.kill_switch == (kill_env or rails.kill_switch)
        if d.target is not None:
            assert d.target != before
            assert lo <= d.target <= hi, "outside the tighter of group and policy bounds"
            assert abs(d.target - before) <= _allowed_step(before, rails), "step too large"
            assert not busy, "acted during a scaling activity"
            if sim.last_action_at is not None:
                assert now - sim.last_action_at >= timedelta(seconds=rails.cooldown_seconds)
            if d.target < before:
                assert proposal is not None
                assert complete, "scaled in on missing data"
                window = [o for o in sim.observations if o.at >= now - rails.stabilization_window]
                assert all(o.proposal is not None and o.data_complete for o in window)
                peak = max([min(max(o.proposal or 0, lo), hi) for o in window], default=d.target)
                assert d.target >= peak, "scaled in below a proposal inside the window"
                if rails.scale_in_stabilization_minutes:
                    assert any(
                        o.at <= now - rails.stabilization_window for o in sim.observations
                    ), "scaled in before watching a whole window"
            sim.state = sim.state.model_copy(update={"desired": d.target, "in_service": d.target})
            sim.last_action_at = now
        if proposal is None:
            assert d.target is None
        sim.observations.append(Observation(at=now, proposal=proposal, data_complete=complete))
