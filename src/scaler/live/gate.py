"""The cost gate: when a tick must read a group's CloudWatch metrics, and what a calm tick
carries forward from the last full read in between (called by `scaler.live.tick`).

What a full read concluded is kept in a `ReadMemory`: the state store's (`StoredMemory`) for
`scaler run` and Lambda, so a process started fresh each tick remembers; else this process's.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from scaler.aws import Clients, RetryPolicy
from scaler.errors import ScalerError
from scaler.live.advice import GroupAdvice
from scaler.logs import get_logger
from scaler.models import GroupError, GroupState
from scaler.policy import GroupPolicy, Policy
from scaler.signals import MINUTE, floor_minute
from scaler.sources.sqs import QueueDepth, read_queue_depths

__all__ = [
    "GROWTH_FACTOR",
    "GROWTH_MESSAGES",
    "KeptReads",
    "LastRead",
    "ProcessMemory",
    "ReadMemory",
    "StoredMemory",
    "TickGate",
    "carry_forward",
    "full_read_due",
    "settings_digest",
]

log = get_logger(__name__)


#: The queue says trouble when its waiting messages exceed those at the last full read by this
#: factor plus this many messages: growth a calm queue's jitter does not reach.
GROWTH_FACTOR = 1.2
GROWTH_MESSAGES = 10


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


class TickGate:
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
    ) -> TickGate:
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
