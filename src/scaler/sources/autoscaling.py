"""Auto Scaling group state as AWS reports it: sizes, in-service count, instance type, activity.

Called by the live tick (`scaler.live.advise`) and the controller. A numbered launch template
version never changes, so its instance type is remembered for as long as the EC2 client lives
(across the ticks of a `--every` loop or a warm Lambda): a fleet of thousands of groups then
costs DescribeLaunchTemplateVersions calls only for versions it has not seen, not every tick
(EC2's read API throttles at a burst of 100, then 20 a second). `$Latest` and `$Default` can
move at any time, so they are read every tick.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scaler.aws import DEFAULT_RETRY, RetryPolicy, call_aws
from scaler.errors import AwsCallError, RetryableAwsError
from scaler.logs import get_logger
from scaler.models import GroupError, GroupState

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_autoscaling.type_defs import AutoScalingGroupTypeDef
    from mypy_boto3_ec2 import EC2Client

__all__ = ["DESCRIBE_BATCH", "NUMBERED_VERSIONS_KEPT", "read_group_states"]

DESCRIBE_BATCH = 50  # names per DescribeAutoScalingGroups / DescribeLaunchConfigurations call
_DONE_ACTIVITY = frozenset({"Successful", "Failed", "Cancelled"})
_ACTIVE_REFRESH = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})

log = get_logger(__name__)

#: Instance types of numbered launch template versions kept per EC2 client; past this many
#: (a fleet that mints versions for ever) the memory starts again rather than growing.
NUMBERED_VERSIONS_KEPT = 20_000
_TemplateKey = tuple[str, str]
# Per EC2 client (one account and region): (template id or name, numbered version) -> type.
_NUMBERED: weakref.WeakKeyDictionary[object, dict[_TemplateKey, str | None]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class _Lookups:
    """Per-call caches, so groups sharing a launch template cost one EC2 call."""

    autoscaling: AutoScalingClient
    ec2: EC2Client
    retry: RetryPolicy
    template_types: dict[tuple[str, str], str | None] = field(default_factory=dict)
    config_types: dict[str, str | None] = field(default_factory=dict)


def read_group_states(
    autoscaling: AutoScalingClient,
    ec2: EC2Client,
    names: Sequence[str],
    *,
    include_activity: bool = True,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> dict[str, GroupState | GroupError]:
    """The state of each named group, or a GroupError saying why it could not be read.

    Keys are the Auto Scaling group names given. With `include_activity`, scaling activities
    and instance refreshes in progress are read too (two more calls per group).
    """
    out: dict[str, GroupState | GroupError] = {}
    lookups = _Lookups(autoscaling=autoscaling, ec2=ec2, retry=retry)
    unique = list(dict.fromkeys(names))
    found: dict[str, AutoScalingGroupTypeDef] = {}
    for batch in _batches(unique, DESCRIBE_BATCH):
        try:
            found.update(_describe_groups(autoscaling, batch, retry))
        except AwsCallError as exc:
            out.update({n: _error(n, exc) for n in batch})

    for name in unique:
        if name in out:
            continue
        group = found.get(name)
        if group is None:
            out[name] = GroupError(
                group=name,
                error=f"no Auto Scaling group named {name!r} in this account and region "
                "(check auto_scaling_group in the policy)",
            )
            continue
        try:
            out[name] = _state(group, lookups, include_activity=include_activity)
        except AwsCallError as exc:
            out[name] = _error(name, exc)
    return out


def _error(name: str, exc: AwsCallError) -> GroupError:
    return GroupError(group=name, error=str(exc), retryable=isinstance(exc, RetryableAwsError))


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _describe_groups(
    client: AutoScalingClient, names: list[str], retry: RetryPolicy
) -> dict[str, AutoScalingGroupTypeDef]:
    groups: dict[str, AutoScalingGroupTypeDef] = {}
    token: str | None = None
    while True:
        extra: dict[str, Any] = {"NextToken": token} if token else {}
        page = call_aws(
            "autoscaling:DescribeAutoScalingGroups",
            names,
            client.describe_auto_scaling_groups,
            retry=retry,
            expect="AutoScalingGroups",
            AutoScalingGroupNames=names,
            MaxRecords=100,
            **extra,
        )
        groups.update({g["AutoScalingGroupName"]: g for g in page["AutoScalingGroups"]})
        token = page.get("NextToken")
        if not token:
            return groups


def _state(
    group: AutoScalingGroupTypeDef, lookups: _Lookups, *, include_activity: bool
) -> GroupState:
    name = group["AutoScalingGroupName"]
    instances = group.get("Instances", [])
    in_service = [i for i in instances if i.get("LifecycleState") == "InService"]
    template = _template_spec(group)
    running = Counter(i["InstanceType"] for i in in_service if i.get("InstanceType"))
    instance_type = _configured_type(group, template, running, lookups) or _most_common(running)
    return GroupState(
        name=name,
        desired=group["DesiredCapacity"],
        min_size=group["MinSize"],
        max_size=group["MaxSize"],
        in_service=len(in_service),
        instance_type=instance_type,
        launch_template=template,
        mixed_instances="MixedInstancesPolicy" in group,
        activities_in_progress=_activities(name, lookups) if include_activity else 0,
        instance_refresh_in_progress=_refreshing(name, lookups) if include_activity else False,
        activity_checked=include_activity,
    )


def _template_spec(group: AutoScalingGroupTypeDef) -> dict[str, str] | None:
    spec: Any = group.get("LaunchTemplate") or (
        group.get("MixedInstancesPolicy", {})
        .get("LaunchTemplate", {})
        .get("LaunchTemplateSpecification")
    )
    if not spec:
        return None
    out = {
        "id": spec.get("LaunchTemplateId", ""),
        "name": spec.get("LaunchTemplateName", ""),
        "version": spec.get("Version") or "$Default",
    }
    return {k: v for k, v in out.items() if v}


def _configured_type(
    group: AutoScalingGroupTypeDef,
    template: dict[str, str] | None,
    running: Counter[str],
    lookups: _Lookups,
) -> str | None:
    """The type new instances launch as; for several override types, the most common running."""
    overrides = group.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {}).get("Overrides", [])
    override_types = list(
        dict.fromkeys(o["InstanceType"] for o in overrides if "InstanceType" in o)
    )
    if len(override_types) == 1:
        return override_types[0]
    if len(override_types) > 1:
        ranked = [t for t, _ in running.most_common() if t in override_types]
        return ranked[0] if ranked else override_types[0]  # the highest-priority override
    if template is not None:
        return _template_type(group["AutoScalingGroupName"], template, lookups)
    config = group.get("LaunchConfigurationName")
    if config:
        return _config_type(group["AutoScalingGroupName"], config, lookups)
    return None


def _numbered(version: str) -> bool:
    return version.isdigit()


def _template_type(group: str, template: dict[str, str], lookups: _Lookups) -> str | None:
    key = (template.get("id") or template.get("name", ""), template["version"])
    kept = _NUMBERED.setdefault(lookups.ec2, {}) if _numbered(key[1]) else None
    if kept is not None and key in kept:
        return kept[key]
    if key not in lookups.template_types:
        which = (
            {"LaunchTemplateId": template["id"]}
            if "id" in template
            else {"LaunchTemplateName": template["name"]}
        )
        answer = call_aws(
            "ec2:DescribeLaunchTemplateVersions",
            group,
            lookups.ec2.describe_launch_template_versions,
            retry=lookups.retry,
            expect="LaunchTemplateVersions",
            Versions=[template["version"]],
            **which,
        )
        versions = answer.get("LaunchTemplateVersions", [])
        data: Any = versions[0].get("LaunchTemplateData", {}) if versions else {}
        lookups.template_types[key] = data.get("InstanceType")
        if kept is not None and versions:  # a version that was not found is asked again
            if len(kept) >= NUMBERED_VERSIONS_KEPT:
                kept.clear()
            kept[key] = lookups.template_types[key]
    return lookups.template_types[key]


def _config_type(group: str, config: str, lookups: _Lookups) -> str | None:
    if config not in lookups.config_types:
        answer = call_aws(
            "autoscaling:DescribeLaunchConfigurations",
            group,
            lookups.autoscaling.describe_launch_configurations,
            retry=lookups.retry,
            expect="LaunchConfigurations",
            LaunchConfigurationNames=[config],
        )
        configs = answer.get("LaunchConfigurations", [])
        lookups.config_types[config] = configs[0].get("InstanceType") if configs else None
    return lookups.config_types[config]


def _most_common(running: Counter[str]) -> str | None:
    return running.most_common(1)[0][0] if running else None


def _activities(group: str, lookups: _Lookups) -> int:
    # Activities come newest first, and only the newest can still be in progress.
    answer = call_aws(
        "autoscaling:DescribeScalingActivities",
        group,
        lookups.autoscaling.describe_scaling_activities,
        retry=lookups.retry,
        expect="Activities",
        AutoScalingGroupName=group,
        MaxRecords=20,
    )
    return sum(1 for a in answer["Activities"] if a.get("StatusCode") not in _DONE_ACTIVITY)


def _refreshing(group: str, lookups: _Lookups) -> bool:
    # Fails closed: an answer that cannot be read raises, and the rails hold (never "none").
    answer = call_aws(
        "autoscaling:DescribeInstanceRefreshes",
        group,
        lookups.autoscaling.describe_instance_refreshes,
        retry=lookups.retry,
        expect="InstanceRefreshes",
        AutoScalingGroupName=group,
        MaxRecords=5,
    )
    return any(r.get("Status") in _ACTIVE_REFRESH for r in answer["InstanceRefreshes"])
