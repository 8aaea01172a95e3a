"""Paging alerts in, the group they concern out: CloudWatch alarm notifications, parsed strictly.

Three shapes are read, as AWS delivers them: the alarm JSON an SNS topic carries (bare, in an
SNS envelope, or in a Lambda SNS event) and the EventBridge "CloudWatch Alarm State Change"
event. Anything else is an InputError that says what was expected and what was found.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from scaler.errors import InputError
from scaler.policy import GroupPolicy, Policy
from scaler.sources.cloudwatch import queue_name_of

__all__ = ["Alarm", "group_for_alarm", "parse_alarm"]


class Alarm(BaseModel):
    """The parts of a CloudWatch alarm notification that say what paged and where."""

    model_config = ConfigDict(frozen=True)

    name: str
    state: str
    reason: str
    at: AwareDatetime
    namespace: str | None = None
    metric: str | None = None
    dimensions: dict[str, str] = {}


def parse_alarm(text: str, where: str = "<alarm>") -> Alarm:
    """An Alarm from notification text; InputError naming `where` and the problem otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return _from_document(data, where)


def _from_document(data: Any, where: str) -> Alarm:
    if not isinstance(data, dict):
        raise InputError(f"{where}: an alarm notification is a JSON object, got {_kind(data)}")
    records = data.get("Records")
    if isinstance(records, list):  # a Lambda SNS event
        if len(records) != 1 or not isinstance(records[0], dict) or "Sns" not in records[0]:
            raise InputError(f"{where}: expected one SNS record in Records, got {len(records)}")
        return _from_document(records[0]["Sns"], f"{where}: Records[0].Sns")
    if data.get("Type") == "Notification" or ("Message" in data and "TopicArn" in data):
        message = data.get("Message")
        if not isinstance(message, str):
            raise InputError(f"{where}: the SNS envelope's Message is not a string")
        return parse_alarm(message, f"{where}: Message")
    if data.get("detail-type") == "CloudWatch Alarm State Change":
        return _from_eventbridge(data, where)
    if "AlarmName" in data:
        return _from_sns_alarm(data, where)
    keys = ", ".join(sorted(map(str, data))[:8]) or "none"
    raise InputError(
        f"{where}: not a CloudWatch alarm notification (expected AlarmName, an SNS envelope or "
        f"an EventBridge 'CloudWatch Alarm State Change' event); keys: {keys}"
    )


def _from_sns_alarm(data: Mapping[str, Any], where: str) -> Alarm:
    trigger = data.get("Trigger") or {}
    if not isinstance(trigger, dict):
        raise InputError(f"{where}: Trigger is not an object")
    dims = trigger.get("Dimensions") or []
    return Alarm(
        name=_text(data, "AlarmName", where),
        state=_text(data, "NewStateValue", where),
        reason=str(data.get("NewStateReason", "")),
        at=_time(_text(data, "StateChangeTime", where), f"{where}: StateChangeTime"),
        namespace=trigger.get("Namespace"),
        metric=trigger.get("MetricName"),
        dimensions=_dimensions(dims, ("name", "value"), f"{where}: Trigger.Dimensions"),
    )


def _from_eventbridge(data: Mapping[str, Any], where: str) -> Alarm:
    detail = data.get("detail")
    if not isinstance(detail, dict):
        raise InputError(f"{where}: the event has no detail object")
    state = detail.get("state") or {}
    metrics = (detail.get("configuration") or {}).get("metrics") or []
    metric = (metrics[0].get("metricStat") or {}).get("metric") or {} if metrics else {}
    dims = metric.get("dimensions") or {}
    if not isinstance(dims, dict):
        raise InputError(f"{where}: detail.configuration.metrics[0] dimensions is not an object")
    return Alarm(
        name=_text(detail, "alarmName", f"{where}: detail"),
        state=_text(state, "value", f"{where}: detail.state"),
        reason=str(state.get("reason", "")),
        at=_time(str(state.get("timestamp") or data.get("time") or ""), f"{where}: detail.state"),
        namespace=metric.get("namespace"),
        metric=metric.get("name"),
        dimensions={str(k): str(v) for k, v in dims.items()},
    )


def group_for_alarm(alarm: Alarm, policy: Policy) -> GroupPolicy:
    """The policy group an alarm concerns, by its AutoScalingGroupName or QueueName dimension."""
    asg = alarm.dimensions.get("AutoScalingGroupName")
    queue = alarm.dimensions.get("QueueName")
    for group in policy.groups:
        if (asg and asg == group.asg_name) or (queue and queue == queue_name_of(group.queue_name)):
            return group
    dims = ", ".join(f"{k}={v}" for k, v in alarm.dimensions.items()) or "no dimensions"
    raise InputError(
        f"alarm {alarm.name!r} ({dims}) names no group of the policy: match an "
        f"AutoScalingGroupName or QueueName dimension; groups: "
        + ", ".join(f"{g.name} (ASG {g.asg_name}, queue {g.queue_name})" for g in policy.groups)
    )


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: {key} is missing or not a string")
    return value


def _time(text: str, where: str) -> datetime:
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text.replace("Z", "+0000"), fmt)
        except ValueError:
            continue
    raise InputError(f"{where}: {text!r} is not a time like 2026-03-02T11:26:00.000+0000")


def _dimensions(items: Any, keys: Sequence[str], where: str) -> dict[str, str]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InputError(f"{where}: expected a list of {{name, value}} objects")
    name, value = keys
    return {str(i.get(name)): str(i.get(value)) for i in items if name in i and value in i}


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else type(value).__name__
