"""Every alarm shape AWS and Alertmanager send, read into one `Alarm`; anything else named.

Shapes read (field names as AWS and Prometheus document them):
- the CloudWatch alarm notification JSON an SNS topic carries: bare (the SNS `Message`), in an
  SNS HTTP(S) envelope, or in a Lambda SNS event (`Records[0].Sns`);
- the EventBridge "CloudWatch Alarm State Change" event;
- the CloudWatch alarm Lambda-action event (`alarmData`);
- each of them for metric alarms, metric-math alarms (dimensions on the sub-metrics),
  anomaly-detection alarms and composite alarms (the rule and its child alarms' names);
- where each alarm is: its account and region from its ARN (and the fields that repeat them,
  which must agree), and a cross-account alarm's per-metric `AccountId`;
- the Alertmanager webhook, version 4.

Wrong shapes get one line that says what they are ("an SQS event, not an alarm", an SNS
SubscriptionConfirmation). Input is bounded (256 KB, nesting depth) and every outside string is
made safe (`alerts.safe.clean`) here, once. Called by `scaler enrich` and the enrich Lambda.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from scaler.alerts import fields
from scaler.alerts.alarm import Alarm, AlarmKind, AlarmState, MetricRef
from scaler.alerts.safe import MAX_INPUT_BYTES, MAX_NESTING, clean, nesting_depth, shown
from scaler.errors import InputError

__all__ = ["Alarm", "AlarmKind", "AlarmState", "MetricRef", "parse_alarm", "parse_document"]


def parse_alarm(text: str | bytes, where: str = "<alarm>") -> Alarm:
    """An Alarm from notification text; InputError (one line, naming `where`) otherwise."""
    size = len(text.encode("utf-8", "replace") if isinstance(text, str) else text)
    if size > MAX_INPUT_BYTES:
        raise InputError(
            f"{where}: {size:,} bytes is no alarm notification (SNS messages are at most "
            f"{MAX_INPUT_BYTES // 1024} KB)"
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    if nesting_depth(text) > MAX_NESTING:
        raise InputError(
            f"{where}: JSON nested deeper than {MAX_NESTING} levels is no alarm notification"
        )
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = (
            f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
            if isinstance(exc, json.JSONDecodeError)
            else "nested too deep"
        )
        raise InputError(f"{where}: not JSON ({detail})") from None
    return parse_document(data, where)


def parse_document(data: Any, where: str = "<alarm>") -> Alarm:
    """An Alarm from an already-decoded document (a Lambda event); InputError otherwise."""
    try:
        return _from_document(data, where, data)
    except InputError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a shape nobody foresaw
        raise InputError(
            f"{where}: not a readable alarm notification ({clean(exc, 120)})"
        ) from None


def _from_document(data: Any, where: str, original: Any) -> Alarm:
    if not isinstance(data, dict):
        raise InputError(
            f"{where}: an alarm notification is a JSON object, got {fields.kind_name(data)}"
        )
    if isinstance(data.get("Records"), list):
        return _from_records(data["Records"], where)
    if "Type" in data and ("TopicArn" in data or "MessageId" in data):
        return _from_sns_envelope(data, where)
    if "alarmData" in data:
        return _from_lambda_action(data, where)
    if "detail-type" in data:
        return _from_eventbridge(data, where)
    if "alerts" in data and "version" in data:
        return _from_alertmanager(data, where)
    if "AlarmName" in data:
        return _from_sns_alarm(data, where, original)
    keys = ", ".join(clean(k, 40) for k in sorted(map(str, data))[:8]) or "none"
    raise InputError(
        f"{where}: not an alarm notification (expected a CloudWatch alarm through SNS, "
        f"EventBridge or a Lambda alarm action, or an Alertmanager webhook); keys: {keys}"
    )


def _from_records(records: list[Any], where: str) -> Alarm:
    first = records[0] if records else None
    if not isinstance(first, dict):
        raise InputError(f"{where}: an event with {len(records)} record(s) and none readable")
    source = first.get("EventSource") or first.get("eventSource")
    if source != "aws:sns" and "Sns" not in first:
        kind = str(source).removeprefix("aws:").upper() if source else "unknown"
        hint = ""
        if source == "aws:sqs":
            hint = " (if the queue carries alarm notifications, pass one record's body)"
        raise InputError(f"{where}: {_article(kind)} {clean(kind, 20)} event, not an alarm{hint}")
    if len(records) != 1:
        raise InputError(f"{where}: an SNS event carries one record; this one has {len(records)}")
    sns = first.get("Sns")
    if not isinstance(sns, dict):
        raise InputError(f"{where}: Records[0].Sns is not an object")
    alarm = _from_sns_envelope(sns, f"{where}: Records[0].Sns")
    return alarm.model_copy(update={"shape": "Lambda SNS event"})


def _from_sns_envelope(data: Mapping[str, Any], where: str) -> Alarm:
    kind = data.get("Type")
    if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        topic = clean(data.get("TopicArn", "unknown topic"), 256)
        raise InputError(
            f"{where}: an SNS {kind} for {topic}, not an alarm; confirm the subscription "
            "yourself if you meant to (scaler never follows its SubscribeURL)"
        )
    if kind != "Notification":
        raise InputError(f"{where}: an SNS message of type {shown(kind)}, not a Notification")
    message = data.get("Message")
    if not isinstance(message, str):
        raise InputError(f"{where}: the SNS envelope's Message is not a string")
    alarm = parse_alarm(message, f"{where}: Message")
    return alarm.model_copy(update={"shape": "SNS HTTP envelope"})


def _from_sns_alarm(data: Mapping[str, Any], where: str, original: Any) -> Alarm:
    trigger = data.get("Trigger") or {}
    if not isinstance(trigger, dict):
        raise InputError(f"{where}: Trigger is not an object")
    metrics: list[MetricRef] = []
    if trigger.get("MetricName") or trigger.get("Dimensions"):
        dims = fields.pairs(trigger.get("Dimensions") or [], f"{where}: Trigger.Dimensions")
        metrics.append(fields.metric_ref(trigger.get("Namespace"), trigger.get("MetricName"), dims))
    subs, expression = fields.sub_metrics(
        trigger.get("Metrics"), f"{where}: Trigger.Metrics", fields.SNS_KEYS
    )
    metrics += subs
    rule = data.get("AlarmRule")
    children = [
        fields.name_from_arn(fields.obj(c, f"{where}: TriggeringChildren").get("Arn"))
        for c in (data.get("TriggeringChildren") or [])[: fields.MAX_METRICS]
    ]
    # `Region` here is a display name ("US East (N. Virginia)"): the ARN names the region.
    account, region = fields.place(
        data.get("AlarmArn"),
        f"{where}: AlarmArn",
        account=(data.get("AWSAccountId"), f"{where}: AWSAccountId"),
    )
    return Alarm(
        name=fields.text(data, "AlarmName", where, fields.NAME_LIMIT),
        state=fields.state(data.get("NewStateValue"), f"{where}: NewStateValue"),
        previous_state=fields.optional(data.get("OldStateValue")),
        reason=clean(data.get("NewStateReason", ""), fields.REASON_LIMIT),
        at=fields.time_of(data.get("StateChangeTime"), f"{where}: StateChangeTime"),
        kind=fields.kind_of(rule, expression, trigger.get("ThresholdMetricId")),
        shape="SNS message",
        arn=fields.optional(data.get("AlarmArn")),
        account=account,
        region=region,
        metrics=metrics,
        expression=expression,
        rule=clean(rule, 1024) if isinstance(rule, str) else None,
        children=fields.children(rule, children),
        original=original,
    )


def _from_eventbridge(data: Mapping[str, Any], where: str) -> Alarm:
    kind = data.get("detail-type")
    if kind != "CloudWatch Alarm State Change":
        source = clean(data.get("source", "unknown"), 40)
        raise InputError(
            f"{where}: an EventBridge {shown(kind)} event from {source}, not a "
            "'CloudWatch Alarm State Change'"
        )
    detail = fields.obj(data.get("detail"), f"{where}: detail")
    resources = data.get("resources")
    arn = resources[0] if isinstance(resources, list) and resources else None
    alarm = _from_alarm_data(detail, f"{where}: detail", fallback_time=data.get("time"))
    account, region = fields.place(
        arn,
        f"{where}: resources[0]",
        account=(data.get("account"), f"{where}: account"),
        region=(data.get("region"), f"{where}: region"),
    )
    return alarm.model_copy(
        update={
            "shape": "EventBridge event",
            "arn": fields.optional(arn),
            "account": account,
            "region": region,
            "original": data,
        }
    )


def _from_lambda_action(data: Mapping[str, Any], where: str) -> Alarm:
    detail = fields.obj(data.get("alarmData"), f"{where}: alarmData")
    alarm = _from_alarm_data(detail, f"{where}: alarmData", fallback_time=data.get("time"))
    account, region = fields.place(
        data.get("alarmArn"),
        f"{where}: alarmArn",
        account=(data.get("accountId"), f"{where}: accountId"),
        region=(data.get("region"), f"{where}: region"),
    )
    return alarm.model_copy(
        update={
            "shape": "Lambda alarm action",
            "arn": fields.optional(data.get("alarmArn")),
            "account": account,
            "region": region,
            "original": data,
        }
    )


def _from_alarm_data(detail: Mapping[str, Any], where: str, *, fallback_time: Any) -> Alarm:
    """EventBridge's `detail` and the Lambda action's `alarmData` share one camelCase shape."""
    state = fields.obj(detail.get("state") or {}, f"{where}.state")
    previous = fields.obj(detail.get("previousState") or {}, f"{where}.previousState")
    config = fields.obj(detail.get("configuration") or {}, f"{where}.configuration")
    metrics, expression = fields.sub_metrics(
        config.get("metrics"), f"{where}.configuration.metrics", fields.CAMEL_KEYS
    )
    rule = config.get("alarmRule")
    reason_data = state.get("reasonData")
    triggering: list[str] = []
    if isinstance(reason_data, str) and "triggeringAlarms" in reason_data:
        try:
            parsed = json.loads(reason_data)
        except (json.JSONDecodeError, RecursionError):
            parsed = {}
        alarms = parsed.get("triggeringAlarms") if isinstance(parsed, dict) else None
        for item in (alarms if isinstance(alarms, list) else [])[: fields.MAX_METRICS]:
            if isinstance(item, dict):
                triggering.append(fields.name_from_arn(item.get("arn")))
    return Alarm(
        name=fields.text(detail, "alarmName", where, fields.NAME_LIMIT),
        state=fields.state(state.get("value"), f"{where}.state.value"),
        previous_state=fields.optional(previous.get("value")),
        reason=clean(state.get("reason", ""), fields.REASON_LIMIT),
        at=fields.time_of(state.get("timestamp") or fallback_time, f"{where}.state.timestamp"),
        kind=fields.kind_of(rule, expression, None),
        shape="",
        metrics=metrics,
        expression=expression,
        rule=clean(rule, 1024) if isinstance(rule, str) else None,
        children=fields.children(rule, triggering),
    )


def _from_alertmanager(data: Mapping[str, Any], where: str) -> Alarm:
    version = str(data.get("version"))
    if version != "4":
        raise InputError(
            f"{where}: an Alertmanager webhook of version {shown(version)}; scaler reads version 4"
        )
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise InputError(f"{where}: the Alertmanager webhook has no alerts")
    first = fields.obj(alerts[0], f"{where}: alerts[0]")
    status = data.get("status")
    if status not in ("firing", "resolved"):
        raise InputError(f"{where}: status {shown(status)} is neither 'firing' nor 'resolved'")
    # The group's common labels say what every alert in it shares; the first alert's fill in.
    labels: dict[str, str] = {}
    for source in (data.get("commonLabels"), data.get("groupLabels"), first.get("labels")):
        for key, value in fields.obj(source or {}, f"{where}: labels").items():
            labels.setdefault(clean(key, fields.VALUE_LIMIT), clean(value, fields.VALUE_LIMIT))
        if len(labels) > 64:
            break
    annotations = fields.obj(data.get("commonAnnotations") or first.get("annotations") or {}, where)
    reason = annotations.get("summary") or annotations.get("description") or ""
    name = labels.get("alertname") or clean(data.get("groupKey") or "alertmanager group", 255)
    started = first.get("endsAt") if status == "resolved" else first.get("startsAt")
    return Alarm(
        name=clean(name, fields.NAME_LIMIT),
        state="ALARM" if status == "firing" else "OK",
        reason=clean(reason, fields.REASON_LIMIT),
        at=fields.time_of(started, f"{where}: alerts[0].startsAt"),
        kind="alertmanager",
        shape="Alertmanager webhook",
        arn=clean(data["groupKey"], 512) if isinstance(data.get("groupKey"), str) else None,
        labels=labels,
        link=fields.url(data.get("externalURL")),
        original=dict(data),
    )


def _article(word: str) -> str:
    return "an" if word[:1].upper() in "AEIOUS" else "a"
