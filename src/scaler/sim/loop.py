"""The closed loop: a policy and the simulated world, minute by minute, for `scaler simulate`.

`run_policy` builds a fresh world (same seed, so the same arrivals and noise for every policy)
and lets one policy act at the start of each minute before the minute is simulated. `check_scaler`
validates a scenario's `scaler:` section up front, so a mistake is an input error naming the
file and field, not a failure halfway through a run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field

from pydantic import ValidationError

from scaler.errors import InputError
from scaler.instances.catalog import Catalog
from scaler.policy import GroupPolicy
from scaler.signals import Series
from scaler.sim.in_the_loop import TickRecord, group_policy, state_store
from scaler.sim.policies import POLICY_NAMES, PolicyContext, SimPolicy, policies
from scaler.sim.scenario import Scenario
from scaler.sim.world import World

__all__ = ["Run", "check_scaler", "run_policies", "run_policy"]


@dataclass
class Run:
    """One policy's run: the world it left (per-minute record, actions) and scaler's ticks."""

    policy: str
    world: World
    ticks: list[TickRecord] = field(default_factory=list)


def check_scaler(scenario: Scenario, where: str) -> None:
    """The scenario's `scaler:` section as a group policy, or an error naming the field."""
    try:
        group_policy(scenario, follow_type=True)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = ".".join(str(p) for p in ("scaler", *error["loc"]))
            if error["type"] == "extra_forbidden":
                hint = (
                    f"; valid: {', '.join(sorted(GroupPolicy.model_fields))}"
                    if len(error["loc"]) == 1
                    else " (`scaler policy schema` lists every field)"
                )
                problems.append(f"unknown field {path!r}{hint}")
            else:
                problems.append(f"field {path!r}: {error['msg']}")
        raise InputError(f"{where}: " + "; ".join(problems)) from exc


def run_policy(scenario: Scenario, rates: Series, name: str, *, seed: int, catalog: Catalog) -> Run:
    """Simulate `scenario` with policy `name` in the loop."""
    factory = policies.get(name)
    world = World(scenario, rates, seed=seed, catalog=catalog, hot_io_moved=name == "scaler+type")
    with state_store() as store:
        policy: SimPolicy = factory(PolicyContext(scenario, catalog, store))
        for t in range(scenario.minutes):
            policy.decide(world, t)
            world.step()
    return Run(name, world, list(getattr(policy, "ticks", [])))


def run_policies(
    scenario: Scenario,
    rates: Series,
    names: Sequence[str] = POLICY_NAMES,
    *,
    seed: int,
    catalog: Catalog,
) -> list[Run]:
    """Every named policy on the same scenario and seed, in the order given.

    Runs are independent (each builds its own world from the seed), so they run side by side
    in worker processes, one a core; the results are the same as one after another.
    """
    for name in names:
        policies.get(name)  # an unknown name fails before any run starts
    workers = min(len(names), os.cpu_count() or 1)
    # Workers are forked (they inherit the registered policies and the command's logging);
    # where a platform cannot fork, the runs go one after another, with the same results.
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [run_policy(scenario, rates, n, seed=seed, catalog=catalog) for n in names]
    with _pool(workers) as pool:
        # scaler's runs evaluate the rules every tick and take longest: started first
        order = sorted(names, key=lambda n: not n.startswith("scaler"))
        futures = {
            n: pool.submit(run_policy, scenario, rates, n, seed=seed, catalog=catalog)
            for n in order
        }
        return [futures[n].result() for n in names]


def _pool(workers: int) -> Executor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
