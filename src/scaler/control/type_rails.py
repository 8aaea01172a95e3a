"""Planning an instance type change: a launch template version, an instance refresh, the rails.

Called by the controller after the capacity decision; pure (no AWS): the plan is carried out
by `type_actuator.TypeChanger`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from scaler.control.audit import AwsCall, make_tick_id
from scaler.control.history import GroupHistory
from scaler.control.rails import Rail, RailSettings, busy_rails
from scaler.control.settings import TypeChangeSettings
from scaler.errors import InputError
from scaler.models import GroupState

__all__ = [
    "NEW_VERSION",
    "TypeChangeDecision",
    "create_version_call",
    "plan_type_change",
    "start_refresh_call",
    "type_change_tick_id",
]

# Stands for the version number CreateLaunchTemplateVersion returns, in a planned (or dry-run)
# StartInstanceRefresh; the applied call names the real number.
NEW_VERSION = "<new launch template version>"
_ALIASES = frozenset({"$Latest", "$Default"})
_INSTANCE_TYPE = re.compile(r"^[a-z0-9-]+\.[a-z0-9-]+$")


class TypeChangeDecision(BaseModel):
    """What a tick may do about a group's instance type: the calls to make, and every rail held."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str
    at: AwareDatetime
    tick_id: str
    current_type: str | None
    new_type: str
    desired: int
    launch_template: dict[str, str] | None = Field(description="As the group reported it.")
    calls: list[AwsCall] = Field(
        default_factory=list,
        description="CreateLaunchTemplateVersion then StartInstanceRefresh; empty when blocked.",
    )
    held_by: list[Rail] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    kill_switch: bool = False
    enabled: bool = Field(False, description="type_change.apply: false records calls, never makes.")


def type_change_tick_id(tick_id: str) -> str:
    """The audit key of a tick's type change, apart from the same tick's capacity action."""
    return f"{tick_id}/instance_type"


def _template_ref(template: Mapping[str, str]) -> dict[str, str]:
    if template.get("id"):
        return {"LaunchTemplateId": template["id"]}
    return {"LaunchTemplateName": template["name"]}


def create_version_call(
    template: Mapping[str, str], new_type: str, *, group: str, tick_id: str
) -> AwsCall:
    """CreateLaunchTemplateVersion: the group's version with only InstanceType changed."""
    # The token makes a repeat of this tick's request return the same version, not a new one.
    token = hashlib.sha256(f"scaler|{group}|{tick_id}|{new_type}".encode()).hexdigest()[:64]
    return AwsCall(
        service="ec2",
        operation="CreateLaunchTemplateVersion",
        params={
            **_template_ref(template),
            "SourceVersion": template["version"],
            "VersionDescription": f"scaler: {group} to {new_type}, tick {tick_id}"[:255],
            "LaunchTemplateData": {"InstanceType": new_type},
            "ClientToken": token,
        },
    )


def start_refresh_call(
    group: str, template: Mapping[str, str], version: str, settings: TypeChangeSettings
) -> AwsCall:
    """StartInstanceRefresh onto exactly `version` of the template, with the safe preferences."""
    return AwsCall(
        service="autoscaling",
        operation="StartInstanceRefresh",
        params={
            "AutoScalingGroupName": group,
            "Strategy": "Rolling",
            "DesiredConfiguration": {
                "LaunchTemplate": {**_template_ref(template), "Version": version}
            },
            "Preferences": {
                "MinHealthyPercentage": settings.min_healthy_percentage,
                "InstanceWarmup": settings.instance_warmup_seconds,
                "CheckpointPercentages": list(settings.checkpoint_percentages),
                "CheckpointDelay": settings.checkpoint_delay_seconds,
                "AutoRollback": settings.auto_rollback,
                "SkipMatching": settings.skip_matching,
            },
        },
    )


def plan_type_change(
    group: GroupState,
    new_type: str,
    settings: TypeChangeSettings,
    *,
    now: datetime,
    kill_switch_env: bool,
    rails: RailSettings,
    history: GroupHistory,
    tick_id: str | None = None,
) -> TypeChangeDecision:
    """The calls that move `group` to `new_type`, or none, naming every rail that held."""
    if not _INSTANCE_TYPE.match(new_type):
        raise InputError(f"{new_type!r} is not an instance type name such as 'm5d.xlarge'")
    tick = tick_id or make_tick_id(now)
    held: list[tuple[Rail, str]] = []
    kill = rails.kill_switch or kill_switch_env
    if kill:
        held.append((Rail.KILL_SWITCH, "kill switch is on: the type change is only recorded"))
    if not settings.apply:
        held.append(
            (
                Rail.TYPE_CHANGE_DISABLED,
                "type changes are opt-in (type_change.apply is false): the calls are only "
                "recorded; a new type helps only once the application uses it (e.g. hot I/O "
                "moved to an m5d's local disk)",
            )
        )
    blocking = _blocking(group, new_type, settings, rails, history, now)
    notes = [note for _, note in held + blocking]
    template = group.launch_template
    calls: list[AwsCall] = []
    if not blocking and template is not None:
        calls = [
            create_version_call(template, new_type, group=group.name, tick_id=tick),
            start_refresh_call(group.name, template, NEW_VERSION, settings),
        ]
        if group.desired <= 1:
            notes.append(
                f"the group runs {group.desired} instance(s) and type_change."
                "allow_single_instance is true: the refresh replaces its only instance, an "
                "outage until the new one is in service"
            )
    return TypeChangeDecision(
        group=group.name,
        at=now,
        tick_id=tick,
        current_type=group.instance_type,
        new_type=new_type,
        desired=group.desired,
        launch_template=dict(template) if template is not None else None,
        calls=calls,
        held_by=list(dict.fromkeys(rail for rail, _ in held + blocking)),
        notes=notes,
        kill_switch=kill,
        enabled=settings.apply,
    )


def _blocking(
    group: GroupState,
    new_type: str,
    settings: TypeChangeSettings,
    rails: RailSettings,
    history: GroupHistory,
    now: datetime,
) -> list[tuple[Rail, str]]:
    """Every rail that stops the change this tick, with a note saying why and what to do."""
    out: list[tuple[Rail, str]] = []
    if group.instance_type == new_type:
        out.append((Rail.SAME_TYPE, f"the group already runs {new_type}: nothing to do"))
    template = group.launch_template
    if template is None or group.mixed_instances:
        what = "a mixed instances policy" if group.mixed_instances else "no launch template"
        out.append(
            (
                Rail.NO_LAUNCH_TEMPLATE,
                f"the group uses {what} (a launch configuration?): scaler changes types only "
                "through a launch template; change the type yourself, or move the group to a "
                "single launch template (UpdateAutoScalingGroup with LaunchTemplate)",
            )
        )
    elif template.get("version", "$Default") in _ALIASES:
        out.append(
            (
                Rail.UNPINNED_LAUNCH_TEMPLATE,
                f"the group follows launch template version {template.get('version', '$Default')}"
                ": a new version would change what it launches at once, the new version needs a "
                "numbered source, and AWS cannot roll such a group back; pin the group to a "
                "version number (UpdateAutoScalingGroup LaunchTemplate Version=N)",
            )
        )
    if group.desired <= 1 and not settings.allow_single_instance:
        out.append(
            (
                Rail.SINGLE_INSTANCE,
                f"the group runs {group.desired} instance(s): a refresh replaces its only "
                "instance, an outage; set type_change.allow_single_instance to accept that",
            )
        )
    out += busy_rails(group, history, rails, now, what="no type change")
    return out
