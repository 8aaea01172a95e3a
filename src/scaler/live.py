"""One dry-run tick over live AWS: each group's state and metrics in, its advice out.

Every group of the policy is read together (Auto Scaling in batches of 50, CloudWatch in
GetMetricData calls of up to 500 queries), then evaluated alone: one group's failure is an
error in the output, never a stop for the others.

What it costs: CloudWatch bills GetMetricData per metric requested, 17 a group a read. So a
tick reads every queue's depth from SQS (GetQueueAttributes: current, billed per request) and
reads a group's CloudWatch metrics only when `full_read_due` says so: every
`live.full_read_every_minutes` while the queue is calm, and every tick while the queue grows
or the group's last advice had a finding or a proposal. Between full reads a group repeats its
last findings, proposes nothing (the rails hold) and says why. What a full read concluded is
kept in memory for as long as the clients live (a `--every` loop, a warm Lambda); a process
that starts fresh reads everything on its first tick.

CloudWatch publishes SQS and EC2 datapoints a few minutes late, so the newest minutes of a
window are often empty. A tick therefore judges the group as of the last minute that has the
queue and the instance count (its *data age* says how old that is), and calls the data
incomplete when that minute is older than `live.max_data_age_minutes`: incomplete data never
reads as idle, so it never lets the rails scale in.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np
import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from scaler.aws import DEFAULT_RETRY, Clients, RetryPolicy
from scaler.engine import evaluate
from scaler.errors import AwsCallError, RetryableAwsError, ScalerError
from scaler.instances.catalog import Catalog
from scaler.models import Advice, GroupError, GroupState, Place
from scaler.policy import GroupPolicy, Policy
from scaler.signals import MINUTE, Signal, Window, floor_minute
from scaler.sources.autoscaling import read_group_states
from scaler.sources.cloudwatch import CloudWatchSource, FetchResult, MetricTarget
from scaler.sources.plausible import drop_implausible
from scaler.sources.sqs import QueueDepth, read_queue_depths

__all__ = [
    "CORE_SIGNALS",
    "GROWTH_FACTOR",
    "GROWTH_MESSAGES",
    "GroupAdvice",
    "LastRead",
    "PlaceClients",
    "TickAdvice",
    "advise",
    "advise_group",
    "as_of_data",
    "full_read_due",
    "place_clients",
]

log = structlog.get_logger(__name__)

#: The queue says trouble when its waiting messages exceed those at the last full read by this
#: factor plus this many messages: growth a calm queue's jitter does not reach.
GROWTH_FACTOR = 1.2
GROWTH_MESSAGES = 10

#: Without these at a minute, there is no telling the backlog, the throughput or the fleet size.
CORE_SIGNALS = (Signal.QUEUE_VISIBLE.value, Signal.QUEUE_DELETED.value, Signal.INSTANCES.value)


class GroupAdvice(BaseModel):
    """One group's live advice, and what the controller needs to act on it."""

    model_config = ConfigDict(frozen=True)

    group: str
    state: GroupState
    advice: Advice
    as_of: AwareDatetime | None = Field(description="The minute the advice judges.")
    data_age_minutes: int | None = Field(description="How old that minute was at the tick.")
    data_complete: bool = Field(
        description="Core signals present and fresh: only then may the rails scale in."
    )
    proposal: int | None = Field(description="Desired capacity advised; None: no opinion.")
    instance_type: str | None = Field(None, description="Instance type advised, if any.")
    notes: list[str] = Field(default_factory=list)

    def placed(self, place: Place) -> GroupAdvice:
        """This advice, its state marked with the account and region it was read in."""
        return self.model_copy(update={"state": self.state.placed(place)})

    def headline(self) -> str:
        """One line: the group as AWS reports it, and how fresh the data is."""
        s = self.state
        kind = s.instance_type or "type unknown"
        age = (
            "no queue or instance data in the window"
            if self.as_of is None
            else f"data as of {self.as_of:%H:%M} UTC ({self.data_age_minutes} min old)"
        )
        return (
            f"{self.group}: ASG {s.key} desired {s.desired} (min {s.min_size}, max "
            f"{s.max_size}), {s.in_service} in service, {kind}; {age}"
        )


class TickAdvice(BaseModel):
    """A tick over every group of a policy: advice per group, and the groups that failed."""

    model_config = ConfigDict(frozen=True)

    at: AwareDatetime
    groups: list[GroupAdvice]
    errors: list[GroupError]
    metric_calls: int = Field(description="GetMetricData calls this tick made.")
    metric_queries: int
    full_reads: int = Field(0, description="Groups whose CloudWatch metrics this tick read.")
    queue_reads: int = Field(0, description="Queues whose depth this tick read from SQS.")

    def advice(self) -> Advice:
        """Every group's advice as one Advice (the SIGNALS.md JSON), failed groups included."""
        merged = Advice.merge(g.advice for g in self.groups)
        return merged.model_copy(update={"errors": merged.errors + self.errors})


def advise(
    policy: Policy,
    clients: Clients,
    *,
    now: datetime,
    catalog: Catalog | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> TickAdvice:
    """Read every group of `policy` from AWS as of `now` and advise each (never acts).

    Groups in other accounts and regions are read there (`place_clients`), place by place; a
    place that cannot be reached (its role refused) fails its groups, never the others.
    """
    catalog = policy.catalog(catalog)
    parts: list[TickAdvice] = []
    for place, groups in policy.places().items():
        part = policy.model_copy(update={"groups": groups})
        try:
            where = place_clients(policy, place, clients)
        except AwsCallError as exc:
            failed = [
                GroupError(
                    group=g.name,
                    error=f"{place}: {exc}",
                    retryable=isinstance(exc, RetryableAwsError),
                )
                for g in groups
            ]
            for error in failed:
                log.warning("group_not_evaluated", group=error.group, error=error.error)
            parts.append(
                TickAdvice(
                    at=floor_minute(now), groups=[], errors=failed, metric_calls=0, metric_queries=0
                )
            )
            continue
        tick = _advise_place(part, where, now=now, catalog=catalog, retry=retry)
        # An error elsewhere says where ("no group named workers" alone would not).
        errors = [
            e if place == Place() else e.model_copy(update={"error": f"{place}: {e.error}"})
            for e in tick.errors
        ]
        parts.append(
            tick.model_copy(
                update={"groups": [g.placed(place) for g in tick.groups], "errors": errors}
            )
        )
    return TickAdvice(
        at=floor_minute(now),
        groups=[g for p in parts for g in p.groups],
        errors=[e for p in parts for e in p.errors],
        metric_calls=sum(p.metric_calls for p in parts),
        metric_queries=sum(p.metric_queries for p in parts),
        full_reads=sum(p.full_reads for p in parts),
        queue_reads=sum(p.queue_reads for p in parts),
    )


class PlaceClients(NamedTuple):
    """The clients of one account and region: Auto Scaling, EC2, SQS and every action through
    `clients`; metrics through `metrics`, naming `metrics_account` on each query when they are
    read in the monitoring account (CloudWatch cross-account observability)."""

    clients: Clients
    metrics: Clients
    metrics_account: str | None = None


def place_clients(policy: Policy, place: Place, clients: Clients) -> PlaceClients:
    """The clients of `place`: scaler's own there, or the account's role (assumed once and kept
    by `clients`). Raises AwsCallError when the role cannot be assumed."""
    if place.account is None:
        here = clients.at(region=place.region)
        return PlaceClients(here, here)
    settings = policy.accounts[place.account]
    there = clients.at(region=place.region, role_arn=settings.role_arn)
    if settings.observability == "monitoring":
        return PlaceClients(there, clients.at(region=place.region), place.account)
    return PlaceClients(there, there)


def _advise_place(
    policy: Policy,
    where: PlaceClients,
    *,
    now: datetime,
    catalog: Catalog,
    retry: RetryPolicy,
) -> TickAdvice:
    """Every group of `policy` (all in one account and region) read through `where`."""
    clients = where.clients
    errors: list[GroupError] = []
    # Advice needs no scaling activities or refreshes (two calls a group); the controller
    # reads them for a group it is about to change.
    states = read_group_states(
        clients.autoscaling,
        clients.ec2,
        [g.asg_name for g in policy.groups],
        include_activity=False,
        retry=retry,
    )
    window_minutes = policy.live.window_minutes
    every = policy.live.full_read_every_minutes
    stop = floor_minute(now)
    memory = _memory_of(clients) if every > 1 else {}
    depths: Mapping[str, QueueDepth | GroupError] = {}
    if every > 1:
        readable = [
            g.queue_name for g in policy.groups if isinstance(states[g.asg_name], GroupState)
        ]
        depths = read_queue_depths(clients.sqs, readable, retry=retry)
        for queue, unread in depths.items():
            if isinstance(unread, GroupError):  # not fatal: the group's metrics are read instead
                log.warning("queue_depth_unread", queue=queue, error=unread.error)
    reasons: dict[str, str | None] = {}
    for g in policy.groups:
        depth = depths.get(g.queue_name)
        reasons[g.name] = (
            "every tick (live.full_read_every_minutes: 1)"
            if every <= 1
            else full_read_due(
                memory.get(g.name),
                depth if isinstance(depth, QueueDepth) else None,
                now=stop,
                every_minutes=every,
            )
        )
    # A group whose Auto Scaling state could not be read is reported, not fetched.
    targets = [
        MetricTarget.build(
            g.name,
            asg_name=g.asg_name,
            queue=g.queue_name,
            overrides=g.metrics,
            account_id=where.metrics_account,
        )
        for g in policy.groups
        if isinstance(states[g.asg_name], GroupState) and reasons[g.name] is not None
    ]
    fetched = (
        CloudWatchSource(where.metrics.cloudwatch, retry=retry).fetch(
            targets, start=stop - timedelta(minutes=window_minutes), end=stop
        )
        if targets
        else FetchResult(windows={}, errors=[], calls=0, queries=0)
    )
    fetch_errors = {e.group: e for e in fetched.errors}
    out: list[GroupAdvice] = []
    for group in policy.groups:
        state = states[group.asg_name]
        depth = depths.get(group.queue_name)
        if isinstance(state, GroupError):
            errors.append(state.model_copy(update={"group": group.name}))
        elif group.name in fetch_errors:
            errors.append(fetch_errors[group.name])
        elif reasons[group.name] is None:
            last = memory[group.name]
            assert isinstance(depth, QueueDepth)  # a calm verdict needs the queue's depth
            out.append(_between_reads(last, state, depth, now=stop, every_minutes=every))
        else:
            try:
                advice = advise_group(
                    group,
                    state,
                    fetched.windows[group.name],
                    catalog=catalog,
                    now=stop,
                    max_data_age_minutes=policy.live.max_data_age_minutes,
                )
            except ScalerError as exc:  # one group's bad data never stops the others
                errors.append(GroupError(group=group.name, error=str(exc)))
                continue
            out.append(advice)
            if every > 1:
                memory[group.name] = LastRead(
                    at=stop,
                    waiting=depth.waiting if isinstance(depth, QueueDepth) else None,
                    advice=advice,
                )
    for error in errors:
        log.warning("group_not_evaluated", group=error.group, error=error.error)
    log.info("live_reads", full=len(targets), queues=len(depths), groups=len(policy.groups))
    return TickAdvice(
        at=stop,
        groups=out,
        errors=errors,
        metric_calls=fetched.calls,
        metric_queries=fetched.queries,
        full_reads=len(targets),
        queue_reads=len(depths),
    )


class LastRead(BaseModel):
    """What a group's last full read concluded, kept for the ticks until its next."""

    model_config = ConfigDict(frozen=True)

    at: AwareDatetime
    waiting: int | None = Field(description="The queue's visible + delayed then (SQS).")
    advice: GroupAdvice

    @property
    def open(self) -> bool:
        """A finding, or a capacity different from the group's: watched every tick."""
        a = self.advice
        return bool(a.advice.findings) or (a.proposal is not None and a.proposal != a.state.desired)


# Per set of clients (one account and region; a `--every` loop, a warm Lambda): group -> read.
_MEMORY: weakref.WeakKeyDictionary[Clients, dict[str, LastRead]] = weakref.WeakKeyDictionary()


def _memory_of(clients: Clients) -> dict[str, LastRead]:
    return _MEMORY.setdefault(clients, {})


def full_read_due(
    last: LastRead | None, depth: QueueDepth | None, *, now: datetime, every_minutes: int
) -> str | None:
    """Why this tick must read the group's CloudWatch metrics, or None: the queue is calm."""
    if last is None:
        return "no earlier read in this process"
    if depth is None or last.waiting is None:
        return "queue depth unknown"
    if last.open:
        return "a finding or a capacity change is open"
    if depth.waiting > last.waiting * GROWTH_FACTOR + GROWTH_MESSAGES:
        return f"queue growing ({last.waiting} -> {depth.waiting} waiting)"
    if now - last.at >= timedelta(minutes=every_minutes):
        return f"due (every {every_minutes} min)"
    return None


def _between_reads(
    last: LastRead, state: GroupState, depth: QueueDepth, *, now: datetime, every_minutes: int
) -> GroupAdvice:
    """The last full read's findings, no proposal (the rails hold), and the queue's depth now."""
    a = last.advice
    age = (
        None
        if a.as_of is None
        else int((floor_minute(now) - a.as_of).total_seconds()) // MINUTE - 1
    )
    due = last.at + timedelta(minutes=every_minutes)
    note = (
        f"queue calm ({depth.visible} visible, {depth.in_flight} in flight, {depth.delayed} "
        f"delayed; {last.waiting} waiting at the last read): CloudWatch read at "
        f"{last.at:%H:%M} UTC, next by {due:%H:%M} UTC; no capacity change until then"
    )
    return a.model_copy(
        update={
            "state": state,
            "data_age_minutes": age,
            "data_complete": False,
            "proposal": None,
            "instance_type": None,
            "notes": [*a.notes, note],
        }
    )


def advise_group(
    group: GroupPolicy,
    state: GroupState,
    window: Window,
    *,
    catalog: Catalog,
    now: datetime,
    max_data_age_minutes: int,
    rank: bool = True,
) -> GroupAdvice:
    """One group's advice from its state and window (pure: no AWS here).

    `rank=False` leaves out the table of alternative types (the simulator's controller, which
    reads only the proposal, asks for it only when it will read the table).
    """
    # A value no fleet can have is missing data: never read as a fleet that can shrink.
    plausible = drop_implausible(window, in_service=state.in_service, max_size=state.max_size)
    notes = list(plausible.notes)
    judged, as_of = as_of_data(plausible.window)
    # A minute's datapoint is complete when the minute ends: the last complete minute is 0 old.
    age = None if as_of is None else int((floor_minute(now) - as_of).total_seconds()) // MINUTE - 1
    fresh = as_of is not None and age is not None and age <= max_data_age_minutes
    complete = fresh and not plausible.dropped_recent
    if plausible.dropped_recent:
        notes.append("implausible values in the newest minutes: no scale-in on this data")
    if as_of is None:
        notes.append(f"no minute has all of {', '.join(CORE_SIGNALS)}: no capacity opinion")
    elif not fresh:
        notes.append(
            f"newest complete data is {age} minutes old (limit {max_data_age_minutes}): "
            "no scale-in on stale data"
        )
    instance_type = state.instance_type or group.instance_type
    facts = catalog.get(instance_type) if instance_type else None
    if instance_type and facts is None:
        notes.append(f"instance type {instance_type} is not in the catalog: no EBS sizing")
    evaluation = evaluate(
        judged,
        group,
        instance=facts,
        bounds=group.bounds(state.min_size, state.max_size),
        catalog=catalog,
    )
    advice = evaluation.live_advice(rank=rank) if judged.length else Advice()
    sized = next((r for r in advice.recommendations if r.desired_capacity is not None), None)
    typed = next((r.instance_type for r in advice.recommendations if r.instance_type), None)
    return GroupAdvice(
        group=group.name,
        state=state,
        advice=advice,
        as_of=as_of,
        data_age_minutes=age,
        data_complete=complete,
        proposal=sized.desired_capacity if sized is not None and as_of is not None else None,
        instance_type=typed if typed != instance_type else None,
        notes=notes,
    )


def as_of_data(window: Window) -> tuple[Window, datetime | None]:
    """The window up to its last minute with every core signal, and that minute (or None)."""
    present = _all_present(window, CORE_SIGNALS)
    if not present.any():
        return window, None
    last = int(np.flatnonzero(present)[-1])
    return window.head(last + 1), window.time_at(last)


def _all_present(window: Window, signals: Sequence[str]) -> np.ndarray:
    mask = np.ones(window.length, dtype=bool)
    for name in signals:
        values = window.get(name)
        if values is None:
            return np.zeros(window.length, dtype=bool)
        mask &= ~np.isnan(values)
    return mask
