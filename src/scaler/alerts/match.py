"""The policy group an alarm concerns: by its metrics' dimensions, its child alarms, or labels.

- Metric, metric-math and anomaly alarms: an `AutoScalingGroupName` or `QueueName` dimension on
  any of the alarm's metrics (a math expression's sub-metrics carry them).
- Composite alarms: the same, through the child alarms its rule names, read with
  `cloudwatch:DescribeAlarms`; when they cannot be read the error says why.
- Alertmanager alerts: the labels the policy's `alerts.labels` names (default `group`, `asg`,
  `queue`).

Called by `scaler enrich` and the enrich Lambda after `alerts.parse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from scaler.alerts.parse import Alarm, MetricRef
from scaler.alerts.safe import clean
from scaler.aws import call_aws
from scaler.errors import InputError, ScalerError
from scaler.policy import GroupPolicy, Policy
from scaler.sources.cloudwatch import queue_name_of

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

__all__ = ["child_metrics", "group_for_alarm"]

#: DescribeAlarms takes at most 100 names.
_MAX_CHILDREN = 100


def group_for_alarm(
    alarm: Alarm,
    policy: Policy,
    *,
    cloudwatch: CloudWatchClient | None = None,
    labels: Mapping[str, str] | None = None,
) -> GroupPolicy:
    """The group `alarm` concerns; InputError (or AwsCallError for children) saying why not."""
    if alarm.kind == "alertmanager":
        return _by_labels(alarm, policy, labels or {})
    metrics = alarm.metrics
    if alarm.kind == "composite":
        if not alarm.children:
            raise InputError(
                f"composite alarm {alarm.name!r} names no child alarm scaler can read in its "
                f"rule ({alarm.rule or 'no rule sent'}): alarm on the group's own metrics instead"
            )
        if cloudwatch is None:
            raise InputError(
                f"composite alarm {alarm.name!r}: its children ({', '.join(alarm.children)}) "
                "need cloudwatch:DescribeAlarms to be read"
            )
        metrics = child_metrics(alarm, cloudwatch)
    for group in policy.groups:
        if any(_names(metric, group) for metric in metrics):
            return group
    dims = ", ".join(dict.fromkeys(f"{k}={v}" for m in metrics for k, v in m.dimensions.items()))
    via = " (through its child alarms)" if alarm.kind == "composite" else ""
    raise InputError(
        f"alarm {alarm.name!r} ({dims or 'no dimensions'}){via} names no group of the policy: "
        "match an AutoScalingGroupName or QueueName dimension; groups: "
        + ", ".join(f"{g.name} (ASG {g.asg_name}, queue {g.queue_name})" for g in policy.groups)
    )


def child_metrics(alarm: Alarm, cloudwatch: CloudWatchClient) -> list[MetricRef]:
    """The metrics of a composite alarm's child alarms (one level: children's children unread)."""
    names = alarm.children[:_MAX_CHILDREN]
    try:
        found = call_aws(
            "cloudwatch:DescribeAlarms",
            alarm.name,
            cloudwatch.describe_alarms,
            AlarmNames=names,
            AlarmTypes=["MetricAlarm", "CompositeAlarm"],
        )
    except ScalerError as exc:
        raise type(exc)(
            f"composite alarm {alarm.name!r}: its child alarms ({', '.join(names)}) could not be "
            f"read, so its group is unknown: {exc}"
        ) from exc
    metrics: list[MetricRef] = []
    for child in found.get("MetricAlarms", []):
        metrics += _alarm_metrics(child)
    if not metrics:
        nested = [c.get("AlarmName", "?") for c in found.get("CompositeAlarms", [])]
        why = (
            f"they are composite alarms too ({', '.join(nested)}), read one level deep only"
            if nested
            else "none of them exists in this account and region"
        )
        raise InputError(
            f"composite alarm {alarm.name!r}: its child alarms ({', '.join(names)}) name no "
            f"metric: {why}"
        )
    return metrics


def _alarm_metrics(child: Mapping[str, Any]) -> list[MetricRef]:
    out = []
    if child.get("Dimensions"):
        out.append(MetricRef(dimensions=_pairs(child["Dimensions"])))
    for sub in child.get("Metrics", []):
        metric = sub.get("MetricStat", {}).get("Metric", {})
        if metric.get("Dimensions"):
            out.append(MetricRef(dimensions=_pairs(metric["Dimensions"])))
    return out


def _pairs(dims: Any) -> dict[str, str]:
    return {clean(d.get("Name"), 255): clean(d.get("Value"), 255) for d in dims}


def _names(metric: MetricRef, group: GroupPolicy) -> bool:
    asg = metric.dimensions.get("AutoScalingGroupName")
    queue = metric.dimensions.get("QueueName")
    return bool(
        (asg and asg == group.asg_name) or (queue and queue == queue_name_of(group.queue_name))
    )


def _by_labels(alarm: Alarm, policy: Policy, labels: Mapping[str, str]) -> GroupPolicy:
    for label, field in labels.items():
        value = alarm.labels.get(label)
        if not value:
            continue
        for group in policy.groups:
            own = {
                "name": group.name,
                "auto_scaling_group": group.asg_name,
                "queue": queue_name_of(group.queue_name),
            }[field]
            if value == own:
                return group
    shown = ", ".join(f"{k}={v}" for k, v in list(alarm.labels.items())[:12]) or "no labels"
    raise InputError(
        f"Alertmanager alert {alarm.name!r} ({shown}) names no group of the policy through the "
        f"labels alerts.labels names ({', '.join(f'{k} -> {v}' for k, v in labels.items())}); "
        f"groups: {', '.join(policy.names())}"
    )
