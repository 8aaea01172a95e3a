"""Safety rails: a pure function from a proposed capacity to the capacity a tick may set."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from scaler.control.history import GroupHistory, Observation
from scaler.control.settings import RailSettings
from scaler.models import GroupState

__all__ = [
    "KILL_SWITCH_ENV",
    "Rail",
    "RailDecision",
    "RailSettings",
    "apply_rails",
    "busy_rails",
    "kill_switch_from_env",
]

KILL_SWITCH_ENV = "SCALER_KILL_SWITCH"
_OFF_VALUES = frozenset({"", "0", "false", "no", "off"})


class Rail(StrEnum):
    """The name of each safety rail, as output and audit records show it."""

    GROUP_BOUNDS = "group_bounds"
    POLICY_BOUNDS = "policy_bounds"
    MAX_STEP = "max_step"
    COOLDOWN = "cooldown"
    SCALE_IN_STABILIZATION = "scale_in_stabilization"
    MISSING_DATA = "missing_data"
    KILL_SWITCH = "kill_switch"
    SCALING_ACTIVITY = "scaling_activity"
    INSTANCE_REFRESH = "instance_refresh"
    # Applied by the actuator, which sees the group and the log at the moment of acting.
    INTERRUPTED_ACTION = "interrupted_action"
    STALE_DECISION = "stale_decision"
    DEADLINE = "deadline"
    # Instance type changes only (control/type_rails.py).
    TYPE_CHANGE_DISABLED = "type_change_disabled"
    SAME_TYPE = "same_type"
    NO_LAUNCH_TEMPLATE = "no_launch_template"
    UNPINNED_LAUNCH_TEMPLATE = "unpinned_launch_template"
    SINGLE_INSTANCE = "single_instance"


class RailDecision(BaseModel):
    """What the rails allow: `target` to set (None: leave the group), and every rail that held."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str
    at: AwareDatetime
    proposal: int | None
    current: int
    target: int | None = Field(description="Desired capacity to set; None leaves the group.")
    held_by: list[Rail] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    kill_switch: bool = False
    honor_cooldown: bool = False

    @property
    def changes(self) -> bool:
        """True when the decision sets a capacity different from the current one."""
        return self.target is not None and self.target != self.current


def kill_switch_from_env(environ: Mapping[str, str]) -> bool:
    """True unless SCALER_KILL_SWITCH is unset or clearly off (0/false/no/off): unclear means on."""
    value = environ.get(KILL_SWITCH_ENV)
    return value is not None and value.strip().lower() not in _OFF_VALUES


class _Notes:
    """Collects rails that held and plain-language notes while the decision is built."""

    def __init__(self) -> None:
        self.held: list[Rail] = []
        self.notes: list[str] = []

    def hold(self, rail: Rail, note: str) -> None:
        if rail not in self.held:
            self.held.append(rail)
        self.notes.append(note)


def apply_rails(
    proposal: int | None,
    group: GroupState,
    history: GroupHistory,
    settings: RailSettings,
    *,
    now: datetime,
    data_complete: bool,
    kill_switch_env: bool,
    policy_min: int | None = None,
    policy_max: int | None = None,
) -> RailDecision:
    """The capacity a tick may set for `proposal`, naming every rail that changed or blocked it."""
    log = _Notes()
    kill = settings.kill_switch or kill_switch_env
    if kill:
        log.hold(Rail.KILL_SWITCH, "kill switch is on: apply runs as dry-run")
    current = group.desired
    target: int | None = None
    if proposal is None:
        log.notes.append("no proposal this tick: the group stays as it is")
    else:
        wanted = _bounded(proposal, group, policy_min, policy_max, log)
        if wanted < current:
            wanted = _stabilized_scale_in(
                wanted,
                group,
                history=history,
                settings=settings,
                now=now,
                data_complete=data_complete,
                lo=policy_min,
                hi=policy_max,
                log=log,
            )
        if wanted != current:
            wanted = _step_limited(current, wanted, settings, log)
            busy = busy_rails(group, history, settings, now)
            for rail, note in busy:
                log.hold(rail, note)
            target = None if busy else wanted
    return RailDecision(
        group=group.name,
        at=now,
        proposal=proposal,
        current=current,
        target=target,
        held_by=log.held,
        notes=log.notes,
        kill_switch=kill,
        honor_cooldown=settings.honor_cooldown,
    )


def _clamp_to(value: int, lo: int | None, hi: int | None) -> int:
    value = max(value, lo) if lo is not None else value
    return min(value, hi) if hi is not None else value


def _clamp(value: int, group: GroupState, lo: int | None, hi: int | None) -> int:
    """Policy bounds first, then the group's own [min, max], which AWS enforces and so win."""
    return _clamp_to(_clamp_to(value, lo, hi), group.min_size, group.max_size)


def _bounded(proposal: int, group: GroupState, lo: int | None, hi: int | None, log: _Notes) -> int:
    policy_only = _clamp_to(proposal, lo, hi)
    if policy_only != proposal:
        log.hold(
            Rail.POLICY_BOUNDS,
            f"proposal {proposal} is outside the policy's "
            f"[{lo or 0}, {hi if hi is not None else 'no max'}]: using {policy_only}",
        )
    within_group = _clamp_to(policy_only, group.min_size, group.max_size)
    if within_group != policy_only:
        log.hold(
            Rail.GROUP_BOUNDS,
            f"{policy_only} is outside the group's [{group.min_size}, {group.max_size}]: "
            f"using {within_group}",
        )
    return within_group


def _stabilized_scale_in(
    wanted: int,
    group: GroupState,
    *,
    history: GroupHistory,
    settings: RailSettings,
    now: datetime,
    data_complete: bool,
    lo: int | None,
    hi: int | None,
    log: _Notes,
) -> int:
    """The scale-in target after the missing-data and stabilization rails (current: no scale-in)."""
    current = group.desired
    if not data_complete:
        log.hold(Rail.MISSING_DATA, "a needed signal is missing or stale: no scale-in")
        return current
    window = settings.stabilization_window
    if window <= timedelta(0):
        return wanted
    start = now - window
    seen = [o for o in history.since(start) if o.at <= now]
    before = history.latest_before(start)
    minutes = settings.scale_in_stabilization_minutes
    if before is None:
        log.hold(
            Rail.SCALE_IN_STABILIZATION,
            f"fewer than {minutes} minute(s) of history for this group: no scale-in yet",
        )
        return current
    gap = _longest_gap([before, *seen], now)
    if gap > timedelta(seconds=settings.max_observation_gap_seconds):
        log.hold(
            Rail.MISSING_DATA,
            f"no tick for {int(gap.total_seconds())}s inside the last {minutes} minute(s): "
            "no scale-in",
        )
        return current
    if any(o.proposal is None or not o.data_complete for o in seen):
        log.hold(
            Rail.MISSING_DATA,
            f"a tick in the last {minutes} minute(s) lacked data: no scale-in",
        )
        return current
    highest = max([wanted, *(_clamp(o.proposal or 0, group, lo, hi) for o in seen)])
    if highest > wanted:
        log.hold(
            Rail.SCALE_IN_STABILIZATION,
            f"highest proposal in the last {minutes} minute(s) was {highest}: "
            f"scaling in no lower than that",
        )
    return min(highest, current)


def _longest_gap(observations: list[Observation], now: datetime) -> timedelta:
    times = sorted([o.at for o in observations] + [now])
    return max((b - a for a, b in itertools.pairwise(times)), default=timedelta(0))


def _step_limited(current: int, wanted: int, settings: RailSettings, log: _Notes) -> int:
    by_percent = max(1, math.ceil(current * settings.max_step_percent / 100))
    pick = min if settings.step_select == "min" else max
    allowed = pick(settings.max_step_count, by_percent)
    if abs(wanted - current) <= allowed:
        return wanted
    limited = current + allowed if wanted > current else current - allowed
    log.hold(
        Rail.MAX_STEP,
        f"a step from {current} to {wanted} is more than {allowed} per tick: stepping to {limited}",
    )
    return limited


def busy_rails(
    group: GroupState,
    history: GroupHistory,
    settings: RailSettings,
    now: datetime,
    *,
    what: str = "no action",
) -> list[tuple[Rail, str]]:
    """Rails that stop any change to a group this tick (capacity or type), each with its note:
    activities or refreshes not read or running, and the cooldown since the last action."""
    out: list[tuple[Rail, str]] = []
    if not group.activity_checked:
        out.append(
            (
                Rail.SCALING_ACTIVITY,
                f"scaling activities and instance refreshes were not read: {what}",
            )
        )
    if group.instance_refresh_in_progress:
        out.append((Rail.INSTANCE_REFRESH, f"an instance refresh is running: {what}"))
    if group.activities_in_progress > 0:
        out.append(
            (
                Rail.SCALING_ACTIVITY,
                f"{group.activities_in_progress} scaling activity(ies) running: {what}",
            )
        )
    if history.last_action_at is not None:
        since = now - history.last_action_at
        if since < timedelta(seconds=settings.cooldown_seconds):
            left = settings.cooldown_seconds - int(since.total_seconds())
            out.append(
                (
                    Rail.COOLDOWN,
                    f"last action {int(since.total_seconds())}s ago; cooldown "
                    f"{settings.cooldown_seconds}s has {left}s left: {what}",
                )
            )
    return out
