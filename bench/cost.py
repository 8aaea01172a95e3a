"""The advisor's own cost and detection latency for `make bench`: today's reads against the gate.

Before the gate every tick read every CloudWatch metric of a group (GetMetricData bills per
metric requested). The gated tick (the default: `scaler.live.full_read_due`) reads each
queue's depth from SQS every tick and the metrics only when due, carrying the last read
forward in between (`scaler.live.carry_forward`). This module replays both, minute by minute,
on:

- the closed-loop diurnal week and the closed-loop incident (scaler's own policy in the loop,
  `scaler.sim`): the queue's depth SQS would report, and CloudWatch's windows as the simulated
  GetMetricData returns them (late minutes empty); these give the cost;
- the bundled incident trace (throttle onset known): the minutes from the onset to the first
  `iowait_bound` and `backlog_growing` findings, reading every minute and gated.

A full read runs the real advice path (`scaler.live.advise_group`) on the window, so "a finding
is open" or "a scale-out is advised" is what the rules say, not a guess; the group's desired
capacity and the queue's messages in flight come from the replay, as a tick reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from scaler.instances.catalog import Catalog, bundled_catalog
from scaler.live import GroupAdvice, LastRead, advise_group, full_read_due
from scaler.models import GroupState
from scaler.policy import GroupPolicy, LiveSettings
from scaler.signals import Signal, Window
from scaler.sim import scenarios
from scaler.sim.in_the_loop import group_policy
from scaler.sim.loop import run_policy
from scaler.sim.scenario import load_scenario
from scaler.sources.metric_map import resolve_metrics
from scaler.sources.sqs import QueueDepth

__all__ = [
    "GETMETRICDATA_USD_PER_METRIC",
    "SQS_USD_PER_REQUEST",
    "TARGET_USD_PER_GROUP_MONTH",
    "CostFigures",
    "cost_figures",
]

GETMETRICDATA_USD_PER_METRIC = 0.01 / 1000  # us-east-1, per metric requested
SQS_USD_PER_REQUEST = 0.40 / 1_000_000  # standard queue requests beyond the free tier
TARGET_USD_PER_GROUP_MONTH = 1.00
TARGET_BACKLOG_MINUTES = 2
TARGET_IOWAIT_MINUTES = 10
_DAYS_A_MONTH = 30
_WINDOW = LiveSettings().window_minutes
_MAX_AGE = LiveSettings().max_data_age_minutes


@dataclass(frozen=True)
class Replay:
    """One trace replayed a minute at a time: reads made, and when each finding first showed."""

    minutes: int
    full_reads: int
    first_seen: dict[str, int]  # finding kind -> minute index


def _state(group: str, desired: int, in_service: int, fleet: tuple[int, int]) -> GroupState:
    return GroupState(
        name=group,
        desired=desired,
        min_size=fleet[0],
        max_size=fleet[1],
        in_service=in_service,
        instance_type="m5.xlarge",
    )


def _replay(
    window_at: Callable[[int], Window],
    depth_at: Callable[[int], QueueDepth],
    state_at: Callable[[int], GroupState],
    time_at: Callable[[int], datetime],
    *,
    policy: GroupPolicy,
    catalog: Catalog,
    minutes: range,
    every: int,
) -> Replay:
    """Tick every minute; read fully when `full_read_due` (or always, with every=1)."""
    last: LastRead | None = None
    reads = 0
    first_seen: dict[str, int] = {}
    for t in minutes:
        now = time_at(t)
        depth = depth_at(t)
        state = state_at(t)
        due = full_read_due(last, depth, now=now, every_minutes=every, desired=state.desired)
        if every > 1 and due is None:
            continue
        reads += 1
        advice: GroupAdvice = advise_group(
            policy,
            state,
            window_at(t),
            catalog=catalog,
            now=now,
            max_data_age_minutes=_MAX_AGE,
        )
        last = LastRead(at=now, waiting=depth.waiting, in_flight=depth.in_flight, advice=advice)
        for finding in advice.advice.findings:
            first_seen.setdefault(finding.kind, t)
    return Replay(minutes=len(minutes), full_reads=reads, first_seen=first_seen)


def _closed_loop(name: str, every: int, catalog: Catalog) -> Replay:
    scenario, rates = load_scenario(name)
    world = run_policy(scenario, rates, "scaler", seed=1, catalog=catalog).world
    policy = group_policy(scenario, follow_type=False)
    fleet = (scenario.fleet.min_size, scenario.fleet.max_size)
    return _replay(
        lambda t: world.cloudwatch_window(t, _WINDOW, name),
        lambda t: QueueDepth(
            visible=int(world.rec["visible"][t]),
            in_flight=int(world.rec["in_flight"][t]),
            delayed=0,
        ),
        lambda t: _state(name, int(world.rec["desired"][t]), world.in_service(t), fleet),
        world.time,
        policy=policy,
        catalog=catalog,
        minutes=range(_WINDOW, scenario.minutes),
        every=every,
    )


def _incident_trace(every: int, catalog: Catalog) -> tuple[Replay, int]:
    trace = scenarios.incident()
    assert trace.throttle_onset is not None
    window = trace.window
    onset = int((trace.throttle_onset - window.start).total_seconds() // 60)
    visible = window.get(Signal.QUEUE_VISIBLE.value)
    instances = window.get(Signal.INSTANCES.value)
    assert visible is not None and instances is not None

    def state_at(t: int) -> GroupState:
        count = int(instances[t - 1])
        return _state("incident", count, count, (1, 40))

    replay = _replay(
        lambda t: window.head(t).tail(_WINDOW),
        lambda t: QueueDepth(visible=int(visible[t - 1]), in_flight=0, delayed=0),
        state_at,
        lambda t: window.time_at(0) + timedelta(minutes=t),
        policy=GroupPolicy(name="incident"),
        catalog=catalog,
        minutes=range(_WINDOW, window.length + 1),
        every=every,
    )
    return replay, onset


@dataclass(frozen=True)
class CostFigures:
    """Per design: metrics a group-day, dollars a group-month, and the detection minutes."""

    metrics_per_group_day: dict[str, float]
    usd_per_group_month: dict[str, float]
    iowait_minutes: dict[str, int | None]
    backlog_minutes: dict[str, int | None]
    full_read_share: dict[str, float]


def _after(first_seen: dict[str, int], kind: str, onset: int) -> int | None:
    return first_seen[kind] - onset if kind in first_seen else None


#: The gate measured: the default full-read interval while calm (live.full_read_every_minutes).
GATED_EVERY = LiveSettings().full_read_every_minutes


def cost_figures(every: int = GATED_EVERY) -> tuple[list[str], CostFigures]:
    """Today (a full read every minute) against the gate at `every` minutes."""
    catalog = bundled_catalog()
    metrics = len(resolve_metrics())
    designs = {"today": 1, "gated": every}
    per_day: dict[str, float] = {}
    usd: dict[str, float] = {}
    share: dict[str, float] = {}
    iowait: dict[str, int | None] = {}
    backlog: dict[str, int | None] = {}
    for design, interval in designs.items():
        if interval == 1:
            share[design] = 1.0  # every tick reads: no need to replay the week to know
        else:
            replays = [_closed_loop(n, interval, catalog) for n in ("diurnal-week", "incident")]
            share[design] = sum(r.full_reads for r in replays) / sum(r.minutes for r in replays)
        per_day[design] = share[design] * 1440 * metrics
        sqs = 1440 if interval > 1 else 0  # one GetQueueAttributes a tick
        usd[design] = _DAYS_A_MONTH * (
            per_day[design] * GETMETRICDATA_USD_PER_METRIC + sqs * SQS_USD_PER_REQUEST
        )
        trace, onset = _incident_trace(interval, catalog)
        iowait[design] = _after(trace.first_seen, "iowait_bound", onset)
        backlog[design] = _after(trace.first_seen, "backlog_growing", onset)
    figures = CostFigures(per_day, usd, iowait, backlog, share)
    lines = [
        f"the advisor's own cost (GetMetricData ${GETMETRICDATA_USD_PER_METRIC * 1000:.2f} per "
        f"1,000 metrics, SQS ${SQS_USD_PER_REQUEST * 1e6:.2f} per million requests; closed-loop "
        "diurnal week + incident):"
    ]
    for design in designs:
        label = (
            f"every minute, as before ({metrics} metrics a read)"
            if design == "today"
            else (f"gated, the default (SQS every minute, CloudWatch every {every} min when calm)")
        )
        lines.append(
            f"  {label}: {per_day[design]:8,.0f} metrics a group-day "
            f"({share[design]:.0%} of ticks read CloudWatch), "
            f"${usd[design]:.2f} a group-month"
        )
    verdict = "met" if usd["gated"] <= TARGET_USD_PER_GROUP_MONTH else "NOT met"
    lines.append(f"  target <= ${TARGET_USD_PER_GROUP_MONTH:.2f} a group-month: {verdict}")
    lines.append(
        "  incident trace, minutes from the throttle's onset to the finding (today -> gated):"
    )
    lines.append(
        f"    iowait_bound    {iowait['today']} -> {iowait['gated']} "
        f"(target <= {TARGET_IOWAIT_MINUTES})"
    )
    lines.append(
        f"    backlog_growing {backlog['today']} -> {backlog['gated']} "
        f"(added by the gate: {_added(backlog)}; target <= {TARGET_BACKLOG_MINUTES})"
    )
    return lines, figures


def _added(minutes: dict[str, int | None]) -> str:
    today, gated = minutes["today"], minutes["gated"]
    return "n/a" if today is None or gated is None else str(gated - today)
