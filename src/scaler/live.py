"""One dry-run tick over live AWS: each group's state and metrics in, its advice out.

Every group of the policy is read together (Auto Scaling in batches of 50, CloudWatch in
GetMetricData calls of up to 500 queries), then evaluated alone: one group's failure is an
error in the output, never a stop for the others.

CloudWatch publishes SQS and EC2 datapoints a few minutes late, so the newest minutes of a
window are often empty. A tick therefore judges the group as of the last minute that has the
queue and the instance count (its *data age* says how old that is), and calls the data
incomplete when that minute is older than `live.max_data_age_minutes`: incomplete data never
reads as idle, so it never lets the rails scale in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from scaler.aws import DEFAULT_RETRY, Clients, RetryPolicy
from scaler.engine import evaluate
from scaler.errors import ScalerError
from scaler.instances.catalog import Catalog
from scaler.models import Advice, GroupError, GroupState
from scaler.policy import GroupPolicy, Policy
from scaler.signals import MINUTE, Signal, Window, floor_minute
from scaler.sources.autoscaling import read_group_states
from scaler.sources.cloudwatch import CloudWatchSource, MetricTarget
from scaler.sources.plausible import drop_implausible

__all__ = [
    "CORE_SIGNALS",
    "GroupAdvice",
    "TickAdvice",
    "advise",
    "advise_group",
    "as_of_data",
]

log = structlog.get_logger(__name__)

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
            f"{self.group}: ASG {s.name} desired {s.desired} (min {s.min_size}, max "
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
    """Read every group of `policy` from AWS as of `now` and advise each (never acts)."""
    catalog = policy.catalog(catalog)
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
    # A group whose Auto Scaling state could not be read is reported, not fetched.
    targets = [
        MetricTarget.build(g.name, asg_name=g.asg_name, queue=g.queue_name, overrides=g.metrics)
        for g in policy.groups
        if isinstance(states[g.asg_name], GroupState)
    ]
    stop = floor_minute(now)
    fetched = CloudWatchSource(clients.cloudwatch, retry=retry).fetch(
        targets, start=stop - timedelta(minutes=window_minutes), end=stop
    )
    fetch_errors = {e.group: e for e in fetched.errors}
    out: list[GroupAdvice] = []
    for group in policy.groups:
        state = states[group.asg_name]
        if isinstance(state, GroupError):
            errors.append(state.model_copy(update={"group": group.name}))
        elif group.name in fetch_errors:
            errors.append(fetch_errors[group.name])
        else:
            try:
                out.append(
                    advise_group(
                        group,
                        state,
                        fetched.windows[group.name],
                        catalog=catalog,
                        now=stop,
                        max_data_age_minutes=policy.live.max_data_age_minutes,
                    )
                )
            except ScalerError as exc:  # one group's bad data never stops the others
                errors.append(GroupError(group=group.name, error=str(exc)))
    for error in errors:
        log.warning("group_not_evaluated", group=error.group, error=error.error)
    return TickAdvice(
        at=stop,
        groups=out,
        errors=errors,
        metric_calls=fetched.calls,
        metric_queries=fetched.queries,
    )


def advise_group(
    group: GroupPolicy,
    state: GroupState,
    window: Window,
    *,
    catalog: Catalog,
    now: datetime,
    max_data_age_minutes: int,
) -> GroupAdvice:
    """One group's advice from its state and window (pure: no AWS here)."""
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
    advice = evaluation.live_advice() if judged.length else Advice()
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
