"""One dry-run tick over live AWS: each group's state and metrics in, its advice out.

Every group of the policy is read together (Auto Scaling in batches of 50, CloudWatch in
GetMetricData calls of up to 500 queries), then evaluated alone: one group's failure is an
error in the output, never a stop for the others.

What it costs: CloudWatch bills GetMetricData per metric requested, 20 a group a read. So a
tick reads every queue's depth from SQS (GetQueueAttributes: current, billed per request) and
reads a group's CloudWatch metrics only when `full_read_due` says so: every
`live.full_read_every_minutes` while the queue is calm, and every tick while the queue grows
or the group's last read had a finding, advised a scale-out or a type change. Between full
reads a group carries its last read forward (`carry_forward`): its findings and its proposal,
complete data (the rails may scale in on it) only while the queue's depth confirms it stayed
calm. What a full read concluded is kept in a `ReadMemory`: the state store's for `scaler
run` and Lambda (a process started fresh each tick remembers), else this process's.

CloudWatch publishes SQS and EC2 datapoints a few minutes late, so the newest minutes of a
window are often empty. A tick therefore judges the group as of the last minute that has the
queue and the instance count (its *data age* says how old that is), and calls the data
incomplete when that minute is older than `live.max_data_age_minutes`: incomplete data never
reads as idle, so it never lets the rails scale in.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

import numpy as np
import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

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
    "KeptReads",
    "LastRead",
    "PlaceClients",
    "ProcessMemory",
    "ReadMemory",
    "StoredMemory",
    "TickAdvice",
    "advise",
    "advise_group",
    "as_of_data",
    "carry_forward",
    "full_read_due",
    "place_clients",
    "settings_digest",
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
    memory: ReadMemory | None = None,
) -> TickAdvice:
    """Read every group of `policy` from AWS as of `now` and advise each (never acts).

    Groups in other accounts and regions are read there (`place_clients`), place by place; a
    place that cannot be reached (its role refused) fails its groups, never the others.

    `memory` keeps each group's last full read for the gate: the state store's, when the
    caller has one (`scaler run`, Lambda), so a process started fresh each tick remembers;
    without one, this process's memory for as long as the place's clients live.
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
        tick = _advise_place(part, where, now=now, catalog=catalog, retry=retry, memory=memory)
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
    memory: ReadMemory | None,
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
    stop = floor_minute(now)
    readable = {
        g.name: (g, s) for g in policy.groups if isinstance(s := states[g.asg_name], GroupState)
    }
    gate = _Gate.open(policy, list(readable.values()), clients, memory, now=stop, retry=retry)
    # A group whose Auto Scaling state could not be read is reported, not fetched.
    targets = [
        MetricTarget.build(
            g.name,
            asg_name=g.asg_name,
            queue=g.queue_name,
            overrides=g.metrics,
            account_id=where.metrics_account,
        )
        for g, _ in readable.values()
        if gate.reasons[g.name] is not None
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
        if isinstance(state, GroupError):
            errors.append(state.model_copy(update={"group": group.name}))
        elif group.name in fetch_errors:
            errors.append(fetch_errors[group.name])
        elif gate.reasons[group.name] is None:
            out.append(gate.carried(group, state, now=stop))
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
            gate.read(group, advice, now=stop)
    gate.close(at=stop)
    for error in errors:
        log.warning("group_not_evaluated", group=error.group, error=error.error)
    log.info("live_reads", full=len(targets), queues=len(gate.depths), groups=len(policy.groups))
    return TickAdvice(
        at=stop,
        groups=out,
        errors=errors,
        metric_calls=fetched.calls,
        metric_queries=fetched.queries,
        full_reads=len(targets),
        queue_reads=len(gate.depths),
    )


class LastRead(BaseModel):
    """What a group's last full read concluded, kept for the ticks until its next."""

    model_config = ConfigDict(frozen=True)

    at: AwareDatetime
    waiting: int | None = Field(description="The queue's visible + delayed then (SQS).")
    in_flight: int | None = Field(None, description="The queue's messages in flight then (SQS).")
    settings: str | None = Field(
        None, description="A digest of the group's policy then: an edited policy reads again."
    )
    advice: GroupAdvice

    @property
    def open(self) -> str | None:
        """What the next ticks must watch with full reads, or None (a carried read will do).

        A proposal below the group's capacity on complete data is not open: the rails'
        stabilization window holds that scale-in, and carried ticks count in it as every-minute
        reads would, while the queue confirms they stay calm.
        """
        a = self.advice
        if a.advice.findings:
            return f"open: {', '.join(sorted({f.kind for f in a.advice.findings}))}"
        if a.instance_type is not None:
            return f"open: an instance type change to {a.instance_type}"
        if a.proposal is not None and a.proposal > a.state.desired:
            return f"open: a scale-out ({a.state.desired} -> {a.proposal})"
        if a.proposal is not None and a.proposal < a.state.desired and not a.data_complete:
            return f"open: a scale-in ({a.state.desired} -> {a.proposal}) waiting for data"
        return None


class ReadMemory(Protocol):
    """Where the gate keeps each group's last full read between ticks, by key."""

    def recall(self, keys: Sequence[str]) -> dict[str, LastRead]:
        """The reads remembered for `keys` (a key with none is left out)."""
        ...

    def remember(self, reads: Mapping[str, LastRead], *, at: datetime) -> None:
        """Keep `reads`, replacing what each key had."""
        ...


class KeptReads(Protocol):
    """What a state store offers the gate (`scaler.control.store`): text kept by key."""

    def read_last_reads(self, keys: Sequence[str]) -> dict[str, str]: ...

    def write_last_reads(self, reads: Mapping[str, str], *, at: datetime) -> None: ...


class ProcessMemory:
    """Reads kept in this process: for `scaler advise`, which keeps no state between runs."""

    def __init__(self) -> None:
        self._reads: dict[str, LastRead] = {}

    def recall(self, keys: Sequence[str]) -> dict[str, LastRead]:
        """The reads this process remembers for `keys`."""
        return {k: self._reads[k] for k in keys if k in self._reads}

    def remember(self, reads: Mapping[str, LastRead], *, at: datetime) -> None:
        """Keep `reads` for the ticks after."""
        self._reads.update(reads)


class StoredMemory:
    """Reads kept in the state store, so a process started fresh each tick (cron, a cold
    Lambda) remembers. A read the store cannot give back is a full read, never a guess."""

    def __init__(self, store: KeptReads) -> None:
        self._store = store

    def recall(self, keys: Sequence[str]) -> dict[str, LastRead]:
        """The reads the store holds for `keys`; unreadable ones (an older format) left out."""
        try:
            texts = self._store.read_last_reads(keys)
        except ScalerError as exc:  # a failed read costs a full read, not the tick
            log.warning("last_reads_unread", error=str(exc))
            return {}
        reads: dict[str, LastRead] = {}
        for key, text in texts.items():
            try:
                reads[key] = LastRead.model_validate_json(text)
            except ValidationError:
                log.warning("last_read_unreadable", key=key)
        return reads

    def remember(self, reads: Mapping[str, LastRead], *, at: datetime) -> None:
        """Write `reads` to the store; a failed write only costs the next tick a full read."""
        try:
            self._store.write_last_reads({k: r.model_dump_json() for k, r in reads.items()}, at=at)
        except ScalerError as exc:
            log.warning("last_reads_unwritten", error=str(exc))


# Per set of clients (one account and region; a `--every` loop, a warm Lambda) without a store.
_MEMORY: weakref.WeakKeyDictionary[Clients, ProcessMemory] = weakref.WeakKeyDictionary()


def settings_digest(policy: Policy, group: GroupPolicy) -> str:
    """A digest of what a group's advice depends on in the policy: a changed one reads again."""
    text = "\n".join(
        (group.model_dump_json(), policy.live.model_dump_json(), json.dumps(policy.prices))
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Gate:
    """One tick's gate: the queues' depths, the remembered reads, and why each group is read."""

    def __init__(
        self,
        memory: ReadMemory | None,
        depths: Mapping[str, QueueDepth | GroupError],
        last: Mapping[str, LastRead],
        reasons: dict[str, str | None],
        digests: dict[str, str],
        every: int,
    ) -> None:
        self.memory = memory
        self.depths = depths
        self.last = last
        self.reasons = reasons
        self.digests = digests
        self.every = every
        self.new: dict[str, LastRead] = {}

    @classmethod
    def open(
        cls,
        policy: Policy,
        readable: Sequence[tuple[GroupPolicy, GroupState]],
        clients: Clients,
        memory: ReadMemory | None,
        *,
        now: datetime,
        retry: RetryPolicy,
    ) -> _Gate:
        every = policy.live.full_read_every_minutes
        if every <= 1:
            reasons: dict[str, str | None] = {
                g.name: "every tick (live.full_read_every_minutes: 1)" for g in policy.groups
            }
            return cls(None, {}, {}, reasons, {}, every)
        if memory is None:
            memory = _MEMORY.setdefault(clients, ProcessMemory())
        depths = read_queue_depths(clients.sqs, [g.queue_name for g, _ in readable], retry=retry)
        for queue, unread in depths.items():
            if isinstance(unread, GroupError):  # not fatal: the group's metrics are read instead
                log.warning("queue_depth_unread", queue=queue, error=unread.error)
        last = memory.recall([g.state_key for g, _ in readable])
        digests = {g.name: settings_digest(policy, g) for g, _ in readable}
        reasons = {}
        for g, state in readable:
            depth = depths.get(g.queue_name)
            reasons[g.name] = full_read_due(
                last.get(g.state_key),
                depth if isinstance(depth, QueueDepth) else None,
                now=now,
                every_minutes=every,
                desired=state.desired,
                settings=digests[g.name],
            )
        return cls(memory, depths, last, reasons, digests, every)

    def carried(self, group: GroupPolicy, state: GroupState, *, now: datetime) -> GroupAdvice:
        depth = self.depths[group.queue_name]
        assert isinstance(depth, QueueDepth)  # a calm verdict needs the queue's depth
        return carry_forward(
            self.last[group.state_key], state, depth, now=now, every_minutes=self.every
        )

    def read(self, group: GroupPolicy, advice: GroupAdvice, *, now: datetime) -> None:
        if self.memory is None:
            return
        depth = self.depths.get(group.queue_name)
        known = depth if isinstance(depth, QueueDepth) else None
        self.new[group.state_key] = LastRead(
            at=now,
            waiting=known.waiting if known else None,
            in_flight=known.in_flight if known else None,
            settings=self.digests.get(group.name),
            advice=advice,
        )

    def close(self, *, at: datetime) -> None:
        if self.memory is not None and self.new:
            self.memory.remember(self.new, at=at)


def _growth(last: LastRead, depth: QueueDepth) -> str | None:
    """How the queue grew since the last read, or None: calm (jitter below the GROWTH rule)."""
    assert last.waiting is not None
    if depth.waiting > last.waiting * GROWTH_FACTOR + GROWTH_MESSAGES:
        return f"queue growing ({last.waiting} -> {depth.waiting} waiting)"
    # More messages being worked on at once is more load, even with no backlog yet.
    if last.in_flight is not None and (
        depth.in_flight > last.in_flight * GROWTH_FACTOR + GROWTH_MESSAGES
    ):
        return f"work in flight growing ({last.in_flight} -> {depth.in_flight})"
    return None


def full_read_due(
    last: LastRead | None,
    depth: QueueDepth | None,
    *,
    now: datetime,
    every_minutes: int,
    desired: int | None = None,
    settings: str | None = None,
) -> str | None:
    """Why this tick must read the group's CloudWatch metrics, or None: the queue is calm.

    `desired` (the group's capacity now) and `settings` (`settings_digest` now), when given,
    also order a full read when the group or its policy changed since the last read.
    """
    if last is None:
        return "no earlier read remembered"
    if depth is None or last.waiting is None:
        return "queue depth unknown"
    if settings is not None and last.settings != settings:
        return "the group's policy changed since the last read"
    if desired is not None and desired != last.advice.state.desired:
        return f"desired capacity changed ({last.advice.state.desired} -> {desired})"
    if last.at > now:
        return "the last read is newer than this tick"
    opened = last.open
    if opened is not None:
        return opened
    growing = _growth(last, depth)
    if growing is not None:
        return growing
    if now - last.at >= timedelta(minutes=every_minutes):
        return f"due (every {every_minutes} min)"
    return None


def carry_forward(
    last: LastRead, state: GroupState, depth: QueueDepth, *, now: datetime, every_minutes: int
) -> GroupAdvice:
    """The last full read's advice for a calm tick: its findings and its proposal.

    The proposal counts as complete data (the rails may scale in on it) only when the last read
    was complete, is younger than the full-read interval, the group is at the capacity it was
    read at, and the queue's depth now shows no growth since: each is checked here again.
    """
    a = last.advice
    age = (
        None
        if a.as_of is None
        else int((floor_minute(now) - a.as_of).total_seconds()) // MINUTE - 1
    )
    since = now - last.at
    doubts = [
        why
        for why, holds in (
            ("the last read's data was incomplete", a.data_complete),
            (
                f"the last read is {int(since.total_seconds()) // MINUTE} min old",
                timedelta(0) <= since < timedelta(minutes=every_minutes),
            ),
            (
                f"desired capacity changed ({a.state.desired} -> {state.desired})",
                state.desired == a.state.desired,
            ),
            (
                "the queue grew",
                last.waiting is not None and _growth(last, depth) is None,
            ),
        )
        if not holds
    ]
    due = last.at + timedelta(minutes=every_minutes)
    calm = (
        f"queue calm ({depth.visible} visible, {depth.in_flight} in flight, {depth.delayed} "
        f"delayed; {last.waiting} waiting at the last read): CloudWatch read at "
        f"{last.at:%H:%M} UTC, next by {due:%H:%M} UTC"
    )
    proposed = "no capacity opinion" if a.proposal is None else f"proposal {a.proposal}"
    note = (
        f"{calm}; {proposed} carried forward from that read"
        if not doubts
        else f"{calm}; {proposed} carried forward, no scale-in on it: {'; '.join(doubts)}"
    )
    return a.model_copy(
        update={
            "state": state,
            "data_age_minutes": age,
            "data_complete": not doubts,
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
