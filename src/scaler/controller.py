"""The control loop's tick: live advice, then rails and the actuator, group by group.

Dry-run is decided here, once, and handed to the actuator: a tick applies only when the
command line says `--apply` or the policy says `mode: apply`, and the kill switch (policy or
SCALER_KILL_SWITCH) still turns that into dry-run inside the rails. Each group is decided
under its lease, so two overlapping ticks never both act on one group. State (lease,
observations, cooldown, audit) is keyed by the Auto Scaling group (`GroupPolicy.state_key`:
its name, with its account and region when the policy names them), and a group is acted on
through the clients of its own account and region.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from scaler.aws import DEFAULT_RETRY, Clients, RetryPolicy
from scaler.control import (
    DEFAULT_LEASE_TTL,
    ActionResult,
    Actuator,
    Rail,
    RailDecision,
    StateStore,
    TypeChanger,
    TypeChangeResult,
    decide_capacity,
    hold_lease,
    kill_switch_from_env,
    make_tick_id,
    plan_type_change,
)
from scaler.errors import AwsCallError, InputError, ScalerError
from scaler.instances.catalog import Catalog
from scaler.live import GroupAdvice, StoredMemory, advise, place_clients
from scaler.logs import get_logger
from scaler.models import EvidenceValue, GroupError, GroupState, Place
from scaler.policy import GroupPolicy, Policy
from scaler.sources.autoscaling import read_group_states

__all__ = [
    "DEFAULT_LEASE_TTL",
    "DEFAULT_TICK_INTERVAL",
    "GroupOutcome",
    "TickReport",
    "default_owner",
    "run_tick",
]

log = get_logger(__name__)

#: How often ticks run (cron, the Lambda schedule, `--every`): a lease not renewed for this
#: long belongs to a holder that is not working, so the group runs without its controller.
DEFAULT_TICK_INTERVAL = timedelta(minutes=1)

Status = Literal["decided", "leased-elsewhere", "abandoned", "failed"]


class GroupOutcome(BaseModel):
    """What a tick did for one group: the advice, what the rails allowed, what was done."""

    model_config = ConfigDict(frozen=True)

    group: str
    status: Status
    advice: GroupAdvice
    decision: RailDecision | None = None
    action: ActionResult | None = None
    type_change: TypeChangeResult | None = Field(
        None, description="The instance type change, when the advice names another type."
    )
    error: str | None = None
    stale_lease: bool = Field(
        False,
        description="Leased elsewhere by a holder that stopped renewing: no controller is working.",
    )

    @property
    def ok(self) -> bool:
        """False when the group's job was not done: abandoned, failed, an unrecorded action, or
        a lease held by a holder that stopped working."""
        if self.status in ("failed", "abandoned") or self.stale_lease:
            return False
        done = [a for a in (self.action, self.type_change) if a is not None]
        return all(
            a.recorded
            and a.result not in ("failed", "unknown")
            and Rail.DEADLINE not in a.outcome.rails
            for a in done
        )


class TickReport(BaseModel):
    """One tick of `scaler run`: every group's outcome, and the groups it could not read."""

    model_config = ConfigDict(frozen=True)

    tick_id: str
    at: AwareDatetime
    mode: Literal["dry-run", "apply"]
    groups: list[GroupOutcome]
    errors: list[GroupError] = Field(default_factory=list)
    full_reads: int = Field(0, description="Groups whose CloudWatch metrics this tick read.")
    metric_queries: int = Field(0, description="Metrics this tick requested (GetMetricData).")
    queue_reads: int = Field(0, description="Queues whose depth this tick read from SQS.")

    @property
    def ok(self) -> bool:
        """True when every group was read, decided and recorded (held actions are fine)."""
        return not self.errors and all(g.ok for g in self.groups)


def default_owner() -> str:
    """A lease owner unique to this process: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_tick(
    policy: Policy,
    clients: Clients,
    store: StateStore,
    *,
    now: datetime,
    apply: bool = False,
    environ: Mapping[str, str] | None = None,
    owner: str | None = None,
    lease_ttl: timedelta = DEFAULT_LEASE_TTL,
    tick_interval: timedelta = DEFAULT_TICK_INTERVAL,
    stop: threading.Event | None = None,
    catalog: Catalog | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> TickReport:
    """Advise every group, then let the rails and the actuator decide each one.

    `stop` (set by SIGTERM, or near Lambda's deadline) abandons the groups not yet started, and
    a group already started writes no intent after it (its decision is recorded, held by the
    `deadline` rail), so no AWS call outlives the stop and no audit record is half-written.
    """
    env = os.environ if environ is None else environ
    dry_run = not (apply or policy.mode == "apply")
    mode: Literal["dry-run", "apply"] = "dry-run" if dry_run else "apply"
    # A dry-run never makes an apply tick of the same minute a duplicate: the mode is in the id.
    tick_id = make_tick_id(now, prefix=mode)
    owner = owner or default_owner()
    kill_env = kill_switch_from_env(env)
    # The gate remembers each group's last full read in the store, beside its history, so a
    # process started fresh each tick (cron, a cold Lambda) reads CloudWatch only when due.
    tick = advise(
        policy, clients, now=now, catalog=catalog, retry=retry, memory=StoredMemory(store)
    )
    outcomes: list[GroupOutcome] = []
    acting: dict[Place, _Acting] = {}
    for group_advice in tick.groups:
        if stop is not None and stop.is_set():
            outcomes.append(
                GroupOutcome(group=group_advice.group, status="abandoned", advice=group_advice)
            )
            continue
        group = policy.group(group_advice.group)
        if group.place not in acting:
            try:
                # Actions go through the group's own account and region; the clients advise
                # used are kept, so this assumes no role again.
                here = place_clients(policy, group.place, clients).clients
            except AwsCallError as exc:
                outcomes.append(
                    GroupOutcome(
                        group=group.name, status="failed", advice=group_advice, error=str(exc)
                    )
                )
                continue
            acting[group.place] = _Acting(
                here,
                Actuator(here.autoscaling, store, dry_run=dry_run, deadline=stop),
                TypeChanger(here.autoscaling, here.ec2, store, dry_run=dry_run, deadline=stop),
            )
        at = acting[group.place]
        outcomes.append(
            _decide(
                group,
                group_advice,
                store,
                at.actuator,
                at.changer,
                clients=at.clients,
                now=now,
                tick_id=tick_id,
                owner=owner,
                lease_ttl=lease_ttl,
                tick_interval=tick_interval,
                kill_env=kill_env,
                retry=retry,
            )
        )
    report = TickReport(
        tick_id=tick_id,
        at=now,
        mode=mode,
        groups=outcomes,
        errors=tick.errors,
        full_reads=tick.full_reads,
        metric_queries=tick.metric_queries,
        queue_reads=tick.queue_reads,
    )
    log.info("tick", tick=tick_id, mode=mode, ok=report.ok, groups=len(outcomes))
    return report


def _decide(
    group: GroupPolicy,
    advice: GroupAdvice,
    store: StateStore,
    actuator: Actuator,
    changer: TypeChanger,
    *,
    clients: Clients,
    now: datetime,
    tick_id: str,
    owner: str,
    lease_ttl: timedelta,
    tick_interval: timedelta,
    kill_env: bool,
    retry: RetryPolicy,
) -> GroupOutcome:
    # State is keyed by the Auto Scaling group, the thing acted on: two policies naming one
    # ASG share its lease, its cooldown and its audit log.
    key = group.state_key
    try:
        with hold_lease(store, key, owner, now=now, ttl=lease_ttl) as held:
            fence = held.lease
            if fence is None:
                return _leased_elsewhere(group, advice, store, now=now, interval=tick_interval)
            state = advice.state
            if _may_change(advice):
                # Advice reads no activities or refreshes; a group it would change is read
                # again with them, so the rails decide once, on the group as it is now.
                state = _state_before_acting(clients, group, retry)
            decision = decide_capacity(
                store,
                key,
                advice.proposal,
                state,
                group.rails,
                now=now,
                data_complete=advice.data_complete,
                kill_switch_env=kill_env,
                policy_min=group.min_size,
                policy_max=group.max_size,
            )
            evidence = _evidence(advice)
            action = actuator.act(
                state, decision, tick_id=tick_id, now=now, evidence=evidence, fence=fence
            )
            type_change = None
            if advice.instance_type is not None:
                # After the capacity action, so its cooldown (if it acted) holds the refresh.
                plan = plan_type_change(
                    state,
                    advice.instance_type,
                    group.type_change,
                    now=now,
                    kill_switch_env=kill_env,
                    rails=group.rails,
                    history=store.history(key, since=now - group.rails.stabilization_window),
                    tick_id=tick_id,
                )
                type_change = changer.act(
                    state, plan, tick_id=tick_id, now=now, evidence=evidence, fence=held.lease
                )
            return GroupOutcome(
                group=group.name,
                status="decided",
                advice=advice,
                decision=decision,
                action=action,
                type_change=type_change,
            )
    except InputError:
        raise  # bad input (a state table that does not exist) fails every group alike: stop
    except ScalerError as exc:
        log.error("group_tick_failed", group=group.name, tick=tick_id, error=str(exc))
        return GroupOutcome(group=group.name, status="failed", advice=advice, error=str(exc))


class _Acting(NamedTuple):
    """What acts on the groups of one account and region."""

    clients: Clients
    actuator: Actuator
    changer: TypeChanger


def _leased_elsewhere(
    group: GroupPolicy,
    advice: GroupAdvice,
    store: StateStore,
    *,
    now: datetime,
    interval: timedelta,
) -> GroupOutcome:
    """Another tick holds the group: fine while it renews, a failure once it stopped."""
    holder = store.read_lease(group.state_key)
    silent = now - holder.renewed if holder is not None else timedelta(0)
    stale = silent > interval
    log.info("lease_held_elsewhere", group=group.name, stale=stale)
    note = None
    if holder is not None and stale:
        note = (
            f"lease held by {holder.owner}, not renewed for {int(silent.total_seconds())}s "
            f"(ticks run every {int(interval.total_seconds())}s): that holder stopped working "
            f"and the group runs without its controller until the lease expires at "
            f"{holder.expires:%H:%M:%S} UTC"
        )
    return GroupOutcome(
        group=group.name, status="leased-elsewhere", advice=advice, error=note, stale_lease=stale
    )


def _may_change(advice: GroupAdvice) -> bool:
    """True when the advice differs from the group: a capacity or an instance type to change."""
    resize = advice.proposal is not None and advice.proposal != advice.state.desired
    return resize or advice.instance_type is not None


def _state_before_acting(clients: Clients, group: GroupPolicy, retry: RetryPolicy) -> GroupState:
    """The group now, with its scaling activities and instance refreshes, for the rails.

    Read only for a group about to change (two calls more than advice needs), and read again
    rather than reused, so a change made since the tick began is never overrun.
    """
    again = read_group_states(
        clients.autoscaling, clients.ec2, [group.asg_name], include_activity=True, retry=retry
    )[group.asg_name]
    if isinstance(again, GroupError):
        raise ScalerError(f"re-reading group {group.state_key!r} before acting: {again.error}")
    return again.placed(group.place)


def _evidence(advice: GroupAdvice) -> dict[str, EvidenceValue]:
    """What the decision rested on, for the audit log."""
    sized = next((r for r in advice.advice.recommendations if r.desired_capacity is not None), None)
    return {
        "findings": sorted({f.kind for f in advice.advice.findings}),
        "as_of": advice.as_of.isoformat() if advice.as_of else None,
        "data_age_minutes": advice.data_age_minutes,
        "data_complete": advice.data_complete,
        "reason": sized.reason if sized else None,
        **(sized.evidence if sized else {}),
    }
