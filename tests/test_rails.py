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


def since_action(history: GroupHistory, seconds: int) -> GroupHistory:
    """`history` with the last action `seconds` before NOW (the cooldown's clock)."""
    return history.model_copy(update={"last_action_at": NOW - timedelta(seconds=seconds)})


def with_hole(kind: str) -> GroupHistory:
    """steady(4) whose second-newest tick had no proposal, or incomplete data."""
    observations = list(steady(4).observations)
    hole = observations[-2]
    observations[-2] = hole.model_copy(
        update={"proposal": None} if kind == "no proposal" else {"data_complete": False}
    )
    return GroupHistory(group="workers", observations=tuple(observations))


EMPTY = GroupHistory(group="workers")
GAP = GroupHistory(
    group="workers",
    observations=(Observation(at=NOW - timedelta(minutes=15), proposal=4, data_complete=True),),
)


@dataclass(frozen=True)
class Case:
    """One row: the rails' inputs, what they must decide, and the rule the row shows."""

    rule: str
    proposal: int | None
    group: GroupState
    history: GroupHistory
    target: int | None
    held_by: list[Rail]
    rails: RailSettings = WIDE
    complete: bool = True
    kill_env: bool = False
    policy_min: int | None = None
    policy_max: int | None = None
    note: str | None = None  # a phrase the notes must contain


CASES = [
    Case("a tick without a proposal changes nothing and blames no rail",
         None, group(), EMPTY, None, [], complete=False, note="no proposal"),
    Case("a scale-out inside every limit is the target as is",
         12, group(10), EMPTY, 12, []),
    Case("the same capacity as now is not an action",
         10, group(10), steady(10), None, []),
    Case("a proposal above the policy's max is cut to it",
         50, group(10), steady(10), 15, [Rail.POLICY_BOUNDS], policy_max=15),
    Case("the group's own max wins over a looser policy",
         30, group(10, hi=20), steady(10), 20, [Rail.GROUP_BOUNDS], policy_max=40),
    Case("a proposal under the policy's min is raised to it",
         2, group(10), steady(2), 6, [Rail.POLICY_BOUNDS], policy_min=6),
    Case("a jump of 20 with max_step_count 4 steps by 4",
         30, group(10), EMPTY, 14, [Rail.MAX_STEP],
         rails=RailSettings(max_step_count=4, max_step_percent=1000)),
    Case("step_select min: 50% of 4 is 2, the smaller of (10, 2)",
         20, group(4), EMPTY, 6, [Rail.MAX_STEP],
         rails=RailSettings(max_step_count=10, max_step_percent=50, step_select="min")),
    Case("step_select max: the larger of (10, 2), like HPA",
         20, group(4), EMPTY, 14, [Rail.MAX_STEP],
         rails=RailSettings(max_step_count=10, max_step_percent=50, step_select="max")),
    Case("a group at zero may still start: the percent step is at least one",
         5, group(0), EMPTY, 1, [Rail.MAX_STEP],
         rails=RailSettings(max_step_count=10, max_step_percent=50)),
    Case("the step limits scale-in too",
         2, group(10), steady(2), 7, [Rail.MAX_STEP],
         rails=RailSettings(max_step_count=3, max_step_percent=1000)),
    Case("an action 60 s ago holds this tick's change inside a 300 s cooldown",
         20, group(10), since_action(steady(10), 60), None, [Rail.COOLDOWN], note="240s left"),
    Case("exactly cooldown_seconds after the last action the group may change",
         20, group(10), since_action(steady(10), 300), 20, []),
    Case("recent proposals of 8 keep a proposal of 4 from going below 8",
         4, group(10), watched(3, 3, 3, 3, 3, 8, 8, 5, 5, 5), 8, [Rail.SCALE_IN_STABILIZATION]),
    Case("a high proposal outside the 5-minute window does not hold",
         4, group(10), watched(20, 20, 20, 4, 4, 4, 4, 4, 4, 4), 4, []),
    Case("a window peak above current means no scale-in now",
         4, group(10), watched(4, 4, 4, 4, 4, 4, 4, 4, 4, 12), None,
         [Rail.SCALE_IN_STABILIZATION]),
    Case("three minutes of history cannot stabilize a five-minute window",
         4, group(10), watched(4, 4, 4), None, [Rail.SCALE_IN_STABILIZATION]),
    Case("a zero stabilization window scales in at once",
         4, group(10), EMPTY, 4, [],
         rails=WIDE.model_copy(update={"scale_in_stabilization_minutes": 0})),
    Case("incomplete data this tick holds a scale-in",
         4, group(10), steady(4), None, [Rail.MISSING_DATA], complete=False),
    Case("incomplete data this tick lets a scale-out through",
         14, group(10), steady(14), 14, [], complete=False),
    Case("a tick in the window without a proposal never reads as idle",
         4, group(10), with_hole("no proposal"), None, [Rail.MISSING_DATA]),
    Case("a tick in the window with incomplete data never reads as idle",
         4, group(10), with_hole("incomplete"), None, [Rail.MISSING_DATA]),
    Case("a controller that did not run for 15 minutes has not watched the window",
         4, group(10), GAP, None, [Rail.MISSING_DATA]),
    Case("an instance refresh running blocks any action",
         14, group(10, instance_refresh_in_progress=True), steady(10), None,
         [Rail.INSTANCE_REFRESH]),
    Case("a scaling activity running blocks any action",
         14, group(10, activities_in_progress=2), steady(10), None, [Rail.SCALING_ACTIVITY]),
    Case("activities not read are never assumed idle",
         14, group(10, activity_checked=False), steady(10), None, [Rail.SCALING_ACTIVITY]),
    Case("several rails at once are each named, in the order they applied",
         90, group(10, hi=50), since_action(steady(10), 10), None,
         [Rail.KILL_SWITCH, Rail.POLICY_BOUNDS, Rail.GROUP_BOUNDS, Rail.MAX_STEP, Rail.COOLDOWN],
         rails=RailSettings(max_step_count=2, max_step_percent=1000, kill_switch=True),
         kill_env=True, policy_max=60),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_rails(case: Case) -> None:
    """Each row: the target the rails allow and every rail that held, in order."""
    d = apply_rails(
        case.proposal,
        case.group,
        case.history,
        case.rails,
        now=NOW,
        data_complete=case.complete,
        kill_switch_env=case.kill_env,
        policy_min=case.policy_min,
        policy_max=case.policy_max,
    )
    assert (d.target, d.held_by) == (case.target, case.held_by)
    assert (d.current, d.proposal) == (case.group.desired, case.proposal)
    assert d.changes is (case.target is not None and case.target != case.group.desired)
    assert d.notes if case.held_by or case.proposal is None else True
    if case.note is not None:
        assert case.note in " ".join(d.notes)


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
