"""One dry-run tick over live AWS: every group of a policy read, place by place, and advised.

Called by `scaler advise`, the controller (`scaler run`, Lambda) and an alert's diagnosis.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from scaler.aws import DEFAULT_RETRY, Clients, RetryPolicy
from scaler.errors import AwsCallError, RetryableAwsError, ScalerError
from scaler.heap import collection_paused
from scaler.instances.catalog import Catalog
from scaler.live.advice import GroupAdvice, TickAdvice, advise_group
from scaler.live.gate import ReadMemory, TickGate
from scaler.logs import get_logger
from scaler.models import GroupError, GroupState, Place
from scaler.policy import GroupPolicy, Policy
from scaler.signals import Window, floor_minute
from scaler.sources.autoscaling import read_group_states
from scaler.sources.cloudwatch import CloudWatchSource, MetricTarget

__all__ = ["PlaceClients", "advise", "place_clients"]

log = get_logger(__name__)


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
    with collection_paused():  # a tick's collections cost much and free little (scaler.heap)
        return _advise_places(
            policy, clients, now=now, catalog=policy.catalog(catalog), retry=retry, memory=memory
        )


def _advise_places(
    policy: Policy,
    clients: Clients,
    *,
    now: datetime,
    catalog: Catalog,
    retry: RetryPolicy,
    memory: ReadMemory | None,
) -> TickAdvice:
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


def _advise_one(
    group: GroupPolicy,
    state: GroupState,
    window: Window,
    gate: TickGate,
    *,
    now: datetime,
    policy: Policy,
    catalog: Catalog,
) -> GroupAdvice | GroupError:
    """One read group's advice, remembered by the gate; its error if its data is bad."""
    try:
        advice = advise_group(
            group,
            state,
            window,
            catalog=catalog,
            now=now,
            max_data_age_minutes=policy.live.max_data_age_minutes,
        )
    except ScalerError as exc:  # one group's bad data never stops the others
        return GroupError(group=group.name, error=str(exc))
    gate.read(group, advice, now=now)
    return advice


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
    gate = TickGate.open(policy, list(readable.values()), clients, memory, now=stop, retry=retry)
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
    # Each group is advised as its answers complete: the tick holds about one GetMetricData
    # call's groups of datapoints at a time, not every group's.
    stream = (
        CloudWatchSource(where.metrics.cloudwatch, retry=retry).stream(
            targets, start=stop - timedelta(minutes=window_minutes), end=stop
        )
        if targets
        else None
    )
    judged: dict[str, GroupAdvice | GroupError] = {}
    for name, got in stream or ():
        read, read_state = readable[name]
        judged[name] = (
            got
            if isinstance(got, GroupError)
            else _advise_one(read, read_state, got, gate, now=stop, policy=policy, catalog=catalog)
        )
    out: list[GroupAdvice] = []
    for group in policy.groups:
        state = states[group.asg_name]
        if isinstance(state, GroupError):
            errors.append(state.model_copy(update={"group": group.name}))
        elif gate.reasons[group.name] is None:
            out.append(gate.carried(group, state, now=stop))
        else:
            result = judged[group.name]
            if isinstance(result, GroupError):
                errors.append(result)
            else:
                out.append(result)
    gate.close(at=stop)
    for error in errors:
        log.warning("group_not_evaluated", group=error.group, error=error.error)
    log.info("live_reads", full=len(targets), queues=len(gate.depths), groups=len(policy.groups))
    return TickAdvice(
        at=stop,
        groups=out,
        errors=errors,
        metric_calls=0 if stream is None else stream.calls,
        metric_queries=0 if stream is None else stream.queries,
        full_reads=len(targets),
        queue_reads=len(gate.depths),
    )
