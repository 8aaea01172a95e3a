"""Rank other instance types (and a gp3 volume) for a fleet that is I/O-, CPU- or memory-bound.

For each candidate: how many messages per minute one instance sustains (the smallest of its
limits, planned at `utilization`), the instances the current arrivals need, the fleet's
hourly cost and the cost per 1,000 messages, what must change, and what is assumed.

    per_instance = utilization * min(EBS baseline MB/s * 60 / MB per message,
                                     EBS baseline IOPS * 60 / I/Os per message,
                                     vCPUs * 60 / CPU seconds per message,
                                     memory GiB / GiB per msg/min)
    instances    = ceil(arrivals / per_instance)
    cost / 1000  = instances * price per hour / (arrivals * 60 / 1000)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from scaler.instances.alternatives import Demand, InstanceConstraints, State
from scaler.instances.catalog import Catalog, InstanceFacts
from scaler.models import Alternative, Strategy

__all__ = [
    "GP3_BASE_MIB_S",
    "GP3_MAX_MIB_S",
    "GP3_USD_PER_MIB_S_MONTH",
    "Alternative",
    "Demand",
    "InstanceConstraints",
    "State",
    "Strategy",
    "rank_alternatives",
    "size_on",
]

GP3_BASE_MIB_S = 125.0  # included in the gp3 price
GP3_MAX_MIB_S = 1000.0
GP3_USD_PER_MIB_S_MONTH = 0.04  # us-east-1, per provisioned MiB/s-month above 125
_HOURS_PER_MONTH = 730.0
_MB_PER_MIB = 1.048576
_SAME_COST = 1.05  # within a family, sizes within 5% of the cheapest count as equally cheap


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """A candidate before costing: a type, how it would be used, and its limits."""

    facts: InstanceFacts
    strategy: Strategy
    local: bool = False
    ebs_mb_s: float
    extra_per_hour: float = 0.0
    change: str
    assumptions: tuple[str, ...] = ()


def rank_alternatives(
    current: InstanceFacts,
    state: State,
    demand: Demand,
    catalog: Catalog,
    constraints: InstanceConstraints | None = None,
    *,
    utilization: float = 0.9,
    limit: int | None = 5,
) -> list[Alternative]:
    """The best alternatives for the fleet's state, cheapest per 1,000 messages first.

    The current type (more instances of it) is always ranked too, as the reference.
    """
    costed = _costed(current, state, demand, catalog, constraints, utilization)
    best = _best_per_family(costed, current, demand)
    best.sort(key=_rank_key)
    top = best if limit is None else best[:limit]
    if limit is not None:
        # the reference row stays, so the table always answers "why not just more of the same?"
        top += [a for a in best[limit:] if a.strategy is Strategy.SAME_TYPE]
    return [
        _row(c, catalog, current=current, state=state, demand=demand, utilization=utilization)
        for c in top
    ]


def size_on(
    instance_type: str,
    current: InstanceFacts,
    state: State,
    demand: Demand,
    catalog: Catalog,
    constraints: InstanceConstraints | None = None,
    *,
    utilization: float = 0.9,
) -> Alternative | None:
    """The row `rank_alternatives` computes for `instance_type` (the same arithmetic), even
    where its table keeps another size of the family; None if the constraints exclude it."""
    plans = _plans(
        current, state, demand, catalog, constraints or InstanceConstraints(), only=instance_type
    )
    plan = next((p for p in plans if p.strategy is not Strategy.GP3_THROUGHPUT), None)
    if plan is None:
        return None
    costed = _cost(
        plan, current=current, state=state, demand=demand, catalog=catalog, utilization=utilization
    )
    return _row(
        costed, catalog, current=current, state=state, demand=demand, utilization=utilization
    )


def _costed(
    current: InstanceFacts,
    state: State,
    demand: Demand,
    catalog: Catalog,
    constraints: InstanceConstraints | None,
    utilization: float,
) -> list[_Costed]:
    """Every candidate the constraints allow, sized and priced (before picking per family)."""
    plans = _plans(current, state, demand, catalog, constraints or InstanceConstraints())
    return [
        _cost(
            p, current=current, state=state, demand=demand, catalog=catalog, utilization=utilization
        )
        for p in plans
    ]


def _plans(
    current: InstanceFacts,
    state: State,
    demand: Demand,
    catalog: Catalog,
    constraints: InstanceConstraints,
    *,
    only: str | None = None,
) -> Iterable[_Plan]:
    """Every candidate plan, the current type's first; with `only`, that type's alone."""
    if only is None or only == current.instance_type:
        yield _Plan(
            facts=current,
            strategy=Strategy.SAME_TYPE,
            ebs_mb_s=_ebs(current, demand),
            change=f"more {current.instance_type} instances; nothing else changes",
        )
    nvme_families = _nvme_families(current)
    for facts in catalog.allowed(current, constraints):
        if only is not None and facts.instance_type != only:
            continue
        if not _memory_safe(facts, current, demand):
            continue
        if state == "io" and facts.local_nvme and facts.family in nvme_families:
            yield _Plan(
                facts=facts,
                strategy=Strategy.LOCAL_NVME,
                local=True,
                ebs_mb_s=facts.ebs_baseline_mb_s,
                change=_local_change(facts, current, catalog),
                assumptions=(
                    "the hot data fits on the instance store, and losing it when an instance "
                    "stops is fine (it is a cache or scratch space)",
                ),
            )
        if facts.local_nvme and not current.local_nvme:
            continue  # on EBS, paying for a disk the fleet does not use never ranks better
        yield _Plan(
            facts=facts,
            strategy=_strategy(facts, current, state),
            ebs_mb_s=_ebs(facts, demand),
            change=f"instance type {facts.instance_type} in the launch template",
        )
    if state == "io" and demand.volume_mb_s is not None:
        yield _gp3_plan(current, demand)


def _local_change(facts: InstanceFacts, current: InstanceFacts, catalog: Catalog) -> str:
    change = (
        f"move the hot I/O (cache/scratch dir) to the {facts.local_storage_gb} GB NVMe "
        "instance store, formatted and mounted at boot (user data)"
    )
    twin = catalog.get(f"{current.family}.{facts.size}")
    if twin is not None and twin.ebs_baseline_mb_s == facts.ebs_baseline_mb_s:
        change += f"; EBS limits are the same as {twin.instance_type}"
    return change


def _gp3_plan(current: InstanceFacts, demand: Demand) -> _Plan:
    # provision up to the instance's own baseline: that is the next limit once the volume goes
    want_mib = current.ebs_baseline_mb_s / _MB_PER_MIB
    provisioned = min(GP3_MAX_MIB_S, max(GP3_BASE_MIB_S, math.ceil(want_mib)))
    extra = (provisioned - GP3_BASE_MIB_S) * GP3_USD_PER_MIB_S_MONTH / _HOURS_PER_MONTH
    return _Plan(
        facts=current,
        strategy=Strategy.GP3_THROUGHPUT,
        ebs_mb_s=min(current.ebs_baseline_mb_s, provisioned * _MB_PER_MIB),
        extra_per_hour=extra,
        change=f"gp3 data volume with {provisioned:.0f} MiB/s provisioned throughput "
        f"(and at least {math.ceil(provisioned / 0.25)} IOPS) in the launch template; "
        f"same {current.instance_type}",
        assumptions=(
            f"the volume, not the instance, is the limit: throughput plateaus at "
            f"{demand.volume_mb_s:g} MB/s, below the {current.ebs_baseline_mb_s:g} MB/s "
            "instance baseline",
            f"gp3 throughput above 125 MiB/s costs ${GP3_USD_PER_MIB_S_MONTH}/MiB/s-month "
            f"(us-east-1): ${extra:.4f} per instance-hour; IOPS above 3,000 are extra",
        ),
    )


def _nvme_families(current: InstanceFacts) -> set[str]:
    """Local-NVMe variants of the current family: m5 -> m5d, m6i -> m6id, m5d -> m5d."""
    return {current.family if current.local_nvme else f"{current.family}d"}


def _ebs(facts: InstanceFacts, demand: Demand) -> float:
    """Sustained EBS MB/s one instance gets: its baseline, or the volume's limit if lower."""
    if demand.volume_mb_s is None:
        return facts.ebs_baseline_mb_s
    return min(facts.ebs_baseline_mb_s, demand.volume_mb_s)


def _memory_safe(facts: InstanceFacts, current: InstanceFacts, demand: Demand) -> bool:
    """Without a memory measurement, never propose less memory per vCPU than today."""
    if demand.memory_gib_per_rate is not None:
        return True
    return facts.memory_gib / facts.vcpus >= current.memory_gib / current.vcpus - 1e-9


def _strategy(facts: InstanceFacts, current: InstanceFacts, state: State) -> Strategy:
    if state == "io":
        return Strategy.SUSTAINED_EBS
    ratio = facts.memory_gib / facts.vcpus
    current_ratio = current.memory_gib / current.vcpus
    if ratio < current_ratio:
        return Strategy.COMPUTE_OPTIMIZED
    if ratio > current_ratio:
        return Strategy.MEMORY_OPTIMIZED
    return Strategy.OTHER_FAMILY


@dataclass(frozen=True, slots=True)
class _Costed:
    """A candidate sized and priced: the numbers the ranking compares, before its table row.

    Only the rows a table shows become `Alternative` models (a ranking costs ~35 candidates
    and shows ~6; building and validating a model for each was most of a ranking's time).
    """

    plan: _Plan
    strategy: Strategy
    limit: str
    per_instance: float
    instances_needed: int
    price: float | None
    fleet_cost_per_hour: float | None
    per_1000: float | None
    #: What the ranking orders by: the fleet's cost, or (unpriced) its vCPU count.
    spend: float

    @property
    def instance_type(self) -> str:
        return self.plan.facts.instance_type

    @property
    def vcpus(self) -> int:
        return self.plan.facts.vcpus

    @property
    def sustained_mb_s(self) -> float:
        return round(self.plan.ebs_mb_s, 2)


def _cost(
    plan: _Plan,
    *,
    current: InstanceFacts,
    state: State,
    demand: Demand,
    catalog: Catalog,
    utilization: float,
) -> _Costed:
    facts = plan.facts
    limits = _limits(plan, current, state, demand)
    limit = min(limits, key=limits.__getitem__)
    capacity = limits[limit]
    per_instance = utilization * capacity
    instances = max(1, math.ceil(demand.arrivals_per_min / per_instance - 1e-9))
    price = catalog.price(facts.instance_type)
    fleet = None if price is None else instances * (price + plan.extra_per_hour)
    per_1000 = None if fleet is None else fleet / (demand.arrivals_per_min * 60.0 / 1000.0)
    # rounded as the table shows it: the ranking compares what the reader sees
    fleet_cost = None if fleet is None else round(fleet, 4)
    return _Costed(
        plan=plan,
        strategy=plan.strategy,
        limit=limit,
        per_instance=per_instance,
        instances_needed=instances,
        price=price,
        fleet_cost_per_hour=fleet_cost,
        per_1000=per_1000,
        spend=float(instances * facts.vcpus) if fleet_cost is None else fleet_cost,
    )


def _row(
    c: _Costed,
    catalog: Catalog,
    *,
    current: InstanceFacts,
    state: State,
    demand: Demand,
    utilization: float,
) -> Alternative:
    """The table row of a costed candidate, with the words of what its figures assume (said
    only for the rows shown: a ranking costs ~35 candidates)."""
    price, fleet, per_1000 = c.price, c.fleet_cost_per_hour, c.per_1000
    assumptions = [
        *_limit_notes(c.plan, current, state, demand),
        f"sized at {utilization:.0%} of each type's sustained limits (EBS baseline, not burst)",
        *c.plan.assumptions,
    ]
    return Alternative(
        instance_type=c.instance_type,
        strategy=c.strategy,
        vcpus=c.vcpus,
        instances_needed=c.instances_needed,
        per_instance_msgs_per_min=round(c.per_instance, 2),
        limit=c.limit,
        sustained_mb_s=c.sustained_mb_s,
        price_per_hour=None if price is None else round(price + c.plan.extra_per_hour, 4),
        fleet_cost_per_hour=fleet,
        cost_per_1000_messages=None if per_1000 is None else round(per_1000, 5),
        change=c.plan.change,
        price_note=catalog.price_note(c.instance_type),
        assumptions=assumptions,
    )


def _limits(plan: _Plan, current: InstanceFacts, state: State, demand: Demand) -> dict[str, float]:
    """Messages per minute one instance sustains, per resource (`_limit_notes` says what that
    assumes)."""
    facts = plan.facts
    limits: dict[str, float] = {}
    size_ratio = facts.vcpus / current.vcpus
    if plan.local:
        limits["instance_store"] = demand.msgs_per_min * size_ratio * _local_scale(demand)
    else:
        if demand.mb_per_message > 0:
            limits["ebs_throughput"] = plan.ebs_mb_s * 60.0 / demand.mb_per_message
        if demand.ios_per_message > 0:
            limits["ebs_iops"] = facts.ebs_baseline_iops * 60.0 / demand.ios_per_message
    cpu_s, _ = _cpu_seconds(current, state, demand)
    if cpu_s is not None:
        limits["cpu"] = facts.vcpus * 60.0 / cpu_s
    rate, _ = _memory_rate(current, state, demand)
    if rate is not None:
        limits["memory"] = facts.memory_gib / rate
    if not limits:
        limits["measured"] = demand.msgs_per_min * size_ratio
    return limits


def _limit_notes(plan: _Plan, current: InstanceFacts, state: State, demand: Demand) -> list[str]:
    """What `_limits`' figures for `plan` assume, in words."""
    facts, notes = plan.facts, []
    size_ratio = facts.vcpus / current.vcpus
    if plan.local:
        local = demand.local_mb_s or demand.peak_mb_s or demand.ebs_mb_s
        notes.append(
            f"the instance store sustains at least {local * size_ratio:.1f} MB/s per instance "
            f"({local:.1f} MB/s per {current.size}, scaled with size); AWS publishes "
            "instance-store performance in IOPS, not MB/s: check with fio"
        )
    cpu_s, cpu_assumed = _cpu_seconds(current, state, demand)
    if cpu_assumed:
        notes.append(f"CPU not measured: {current.instance_type} taken as CPU-saturated")
    if cpu_s is None:
        notes.append("CPU not measured: assumed not to be the limit")
    elif facts.family != current.family:
        notes.append(
            f"a message takes as many vCPU-seconds on {facts.family} as on "
            f"{current.family} ({cpu_s:.3g} s); measure before committing"
        )
    if _memory_rate(current, state, demand)[1]:
        notes.append(f"memory not measured: {current.instance_type} taken as memory-bound")
    no_costs = not plan.local and not demand.mb_per_message and not demand.ios_per_message
    if no_costs and cpu_s is None and _memory_rate(current, state, demand)[0] is None:
        notes.append("no per-message costs measured: throughput scaled with vCPUs")
    return notes


def _local_scale(demand: Demand) -> float:
    """The instance store serves what was measured on EBS (or what fio says), per size."""
    measured = demand.ebs_mb_s
    local = demand.local_mb_s or demand.peak_mb_s or measured
    return local / measured if measured > 0 else 1.0


def _cpu_seconds(current: InstanceFacts, state: State, demand: Demand) -> tuple[float | None, bool]:
    """vCPU-seconds a message takes, and whether that is assumed (a CPU-bound fleet unmeasured:
    taken as saturated)."""
    if demand.cpu_seconds_per_message is None and state == "cpu":
        return current.vcpus * 60.0 / demand.msgs_per_min, True
    return demand.cpu_seconds_per_message, False


def _memory_rate(current: InstanceFacts, state: State, demand: Demand) -> tuple[float | None, bool]:
    """GiB a msg/min of throughput holds, and whether that is assumed (a memory-bound fleet
    unmeasured: taken as full)."""
    if demand.memory_gib_per_rate is None and state == "memory":
        return current.memory_gib / demand.msgs_per_min, True
    return demand.memory_gib_per_rate, False


def _best_per_family(
    alternatives: list[_Costed], current: InstanceFacts, demand: Demand
) -> list[_Costed]:
    """One size per (strategy, family): the cheapest, preferring the current vCPU count.

    For sustained EBS, each family gives two: the smallest size whose baseline covers the
    measured per-instance demand, and (if another) the size with the cheapest fleet.
    """
    groups: dict[tuple[Strategy, str], list[_Costed]] = {}
    for alt in alternatives:
        groups.setdefault((alt.strategy, alt.instance_type.split(".")[0]), []).append(alt)
    needed = demand.needed_mb_s - 1e-9
    best = []
    for (strategy, _), members in groups.items():
        cheapest = _cheapest(members, current)
        if strategy is not Strategy.SUSTAINED_EBS:
            best.append(cheapest)
            continue
        covering = [a for a in members if a.sustained_mb_s >= needed]
        if covering:
            best.append(min(covering, key=lambda a: (a.vcpus, a.spend)))
        if not covering or cheapest.instance_type != best[-1].instance_type:
            best.append(replace(cheapest, strategy=Strategy.CHEAPEST_EBS))
    return best


def _cheapest(members: list[_Costed], current: InstanceFacts) -> _Costed:
    lowest = min(a.spend for a in members)
    near = [a for a in members if a.spend <= lowest * _SAME_COST]
    return min(near, key=lambda a: (_size_distance(a, current), a.spend))


def _size_distance(alt: _Costed, current: InstanceFacts) -> float:
    """How many sizes (doublings) away from the current type: fewer is less change."""
    return abs(math.log2(alt.vcpus / current.vcpus))


def _rank_key(alt: _Costed) -> tuple[bool, float, int]:
    return (alt.fleet_cost_per_hour is None, alt.spend, alt.instances_needed)
