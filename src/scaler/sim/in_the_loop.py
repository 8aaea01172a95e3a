"""scaler's own controller in the closed loop, in simulated time: not a copy of it.

Each tick does what `scaler run --apply` does for one group, minus AWS: the CloudWatch window
as it would read (late datapoints missing) goes through `scaler.live.advise_group` (the rules,
the capacity plan, the type advice); `scaler.control.decide_capacity`, the controller's own,
records the proposal in a real state store (`SqliteStateStore` on a temporary file), reads the
history back and lets the rails decide; an allowed change is applied to the simulated group
and recorded as an action, so cooldown and stabilization work as they do live.

`scaler+type` also follows scaler's instance type advice, through `plan_type_change` and its
rails, as a rolling refresh. It stands for a team that has moved the hot I/O (cache or scratch
directory) to the instance store, so it takes the advised type when it has local NVMe, else the
best-ranked local-NVMe alternative the advice lists. The choice is kept once made: scaler's
capacity step usually removes the symptom (and so the type advice) before the cooldown lets the
refresh start, and a team that has made the application change does not undo its decision.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scaler.control import (
    RailDecision,
    SqliteStateStore,
    StateStore,
    decide_capacity,
    make_tick_id,
    plan_type_change,
)
from scaler.instances.catalog import Catalog
from scaler.live import GroupAdvice, advise_group
from scaler.models import Strategy
from scaler.policy import GroupPolicy, LiveSettings
from scaler.sim.policies import PolicyContext, policies
from scaler.sim.scenario import Scenario
from scaler.sim.world import World

__all__ = ["ScalerInTheLoop", "TickRecord", "group_policy", "state_store"]

_SHM = Path("/dev/shm")


@dataclass(frozen=True)
class TickRecord:
    """One tick of scaler in the loop: what it proposed, what the rails let it do."""

    minute: int
    proposal: int | None
    decision: RailDecision
    refresh_to: str | None


def group_policy(scenario: Scenario, *, follow_type: bool) -> GroupPolicy:
    """scaler's group policy for a scenario: its `scaler:` section, bounds from the fleet."""
    settings = dict(scenario.scaler)
    type_change = dict(settings.pop("type_change", {}) or {})
    type_change["apply"] = follow_type
    return GroupPolicy.model_validate(
        {
            "name": scenario.name,
            "instance_type": scenario.instance_type,
            "min_size": scenario.fleet.min_size,
            "max_size": scenario.fleet.max_size,
            **settings,
            "type_change": type_change,
        }
    )


@contextmanager
def state_store() -> Iterator[StateStore]:
    """A SQLite state store on a temporary file (in memory-backed /dev/shm where there is one)."""
    where = str(_SHM) if _SHM.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="scaler-sim-", dir=where) as tmp:
        store = SqliteStateStore(Path(tmp) / "state.db")
        try:
            yield store
        finally:
            store.close()


class ScalerInTheLoop:
    """A tick of scaler's controller every `tick_minutes`, against the simulated group."""

    def __init__(
        self,
        scenario: Scenario,
        group: GroupPolicy,
        store: StateStore,
        *,
        catalog: Catalog,
        follow_type: bool,
        live: LiveSettings | None = None,
    ) -> None:
        self.scenario, self.group, self.store, self.catalog = scenario, group, store, catalog
        self.follow_type = follow_type
        self.live = live or LiveSettings()
        self.ticks: list[TickRecord] = []
        self.chosen_type: str | None = None

    def decide(self, world: World, t: int) -> None:
        if t == 0 or t % self.scenario.tick_minutes:
            return
        group, store, key = self.group, self.store, self.group.asg_name
        now = world.time(t)
        state = world.group_state(t, key)
        window = world.cloudwatch_window(t, self.live.window_minutes, group.name)
        advice = advise_group(
            group,
            state,
            window,
            catalog=self.catalog,
            now=now,
            max_data_age_minutes=self.live.max_data_age_minutes,
            # the alternatives table is read only to pick the type, once
            rank=self.follow_type and self.chosen_type is None,
        )
        decision = decide_capacity(
            store,
            key,
            advice.proposal,
            state,
            group.rails,
            now=now,
            data_complete=advice.data_complete,
            kill_switch_env=False,
            policy_min=group.min_size,
            policy_max=group.max_size,
        )
        if decision.changes and decision.target is not None and not decision.kill_switch:
            world.set_desired(decision.target)
            store.record_action(key, at=now, target=decision.target)
        refresh_to = self._type_change(world, advice, t) if self.follow_type else None
        self.ticks.append(TickRecord(t, advice.proposal, decision, refresh_to))

    def _type_change(self, world: World, advice: GroupAdvice, t: int) -> str | None:
        # The team chose the type when scaler first advised it and did the application change;
        # the controller's rails still decide, every tick, when the refresh may start.
        self.chosen_type = _nvme_choice(advice, self.catalog) or self.chosen_type
        wanted = self.chosen_type
        if wanted is None or wanted == advice.state.instance_type or world.refresh is not None:
            return None
        group, key, now = self.group, self.group.asg_name, world.time(t)
        plan = plan_type_change(
            advice.state,
            wanted,
            group.type_change,
            now=now,
            kill_switch_env=False,
            rails=group.rails,
            history=self.store.history(key, since=now - group.rails.stabilization_window),
            tick_id=make_tick_id(now),
        )
        if not plan.calls or not plan.enabled or plan.kill_switch:
            return None
        world.start_refresh(wanted, group.type_change)
        # As the type changer does: the refresh starts the cooldown, at the current capacity.
        self.store.record_action(key, at=now, target=advice.state.desired)
        return wanted


def _nvme_choice(advice: GroupAdvice, catalog: Catalog) -> str | None:
    """The advised type if it has local NVMe, else the best-ranked local-NVMe alternative."""
    current = advice.state.instance_type
    if advice.instance_type is not None:
        facts = catalog.get(advice.instance_type)
        if facts is not None and facts.local_nvme:
            return advice.instance_type
    for rec in advice.advice.recommendations:
        for alt in rec.alternatives:
            if alt.strategy is Strategy.LOCAL_NVME and alt.instance_type != current:
                return alt.instance_type
    return None


def _build(follow_type: bool) -> Callable[[PolicyContext], ScalerInTheLoop]:
    def build(ctx: PolicyContext) -> ScalerInTheLoop:
        group = group_policy(ctx.scenario, follow_type=follow_type)
        return ScalerInTheLoop(
            ctx.scenario, group, ctx.store, catalog=ctx.catalog, follow_type=follow_type
        )

    return build


policies.register("scaler")(_build(follow_type=False))
policies.register("scaler+type")(_build(follow_type=True))
