"""One group's live advice from its Auto Scaling state and CloudWatch window (pure: no AWS).

`advise_group` is called by the tick (`scaler.live.tick`) for every group it reads, and by the
simulator's controller in the loop; `GroupAdvice` and `TickAdvice` are what a tick returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from scaler.engine import evaluate
from scaler.instances.catalog import Catalog
from scaler.logs import get_logger
from scaler.models import Advice, GroupError, GroupState, Place
from scaler.policy import GroupPolicy
from scaler.signals import MINUTE, Signal, Window, floor_minute
from scaler.sources.plausible import drop_implausible

__all__ = ["CORE_SIGNALS", "GroupAdvice", "TickAdvice", "advise_group", "as_of_data"]

log = get_logger(__name__)


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
