"""Every alarm shape AWS and Alertmanager send, read into one `Alarm`; anything else named.

Shapes read (field names as AWS and Prometheus document them):
- the CloudWatch alarm notification JSON an SNS topic carries: bare (the SNS `Message`), in an
  SNS HTTP(S) envelope, or in a Lambda SNS event (`Records[0].Sns`);
- the EventBridge "CloudWatch Alarm State Change" event;
- the CloudWatch alarm Lambda-action event (`alarmData`);
- each of them for metric alarms, metric-math alarms (dimensions on the sub-metrics),
  anomaly-detection alarms and composite alarms (the rule and its child alarms' names);
- the Alertmanager webhook, version 4.

Wrong shapes get one line that says what they are ("an SQS event, not an alarm", an SNS
SubscriptionConfirmation). Input is bounded (256 KB, nesting depth) and every outside string is
made safe (`alerts.safe.clean`) here, once. Called by `scaler enrich` and the enrich Lambda.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, computed_field

from scaler.alerts.safe import MAX_INPUT_BYTES, MAX_NESTING, clean, nesting_depth, shown
from scaler.errors import InputError

__all__ = ["Alarm", "AlarmKind", "AlarmState", "MetricRef", "parse_alarm", "parse_document"]

AlarmState = Literal["ALARM", "OK", "INSUFFICIENT_DATA"]
AlarmKind = Literal["metric", "metric-math", "anomaly", "composite", "alertmanager"]
_STATES: tuple[AlarmState, ...] = ("ALARM", "OK", "INSUFFICIENT_DATA")
# CloudWatch's own limits: alarm names 255 characters, state reasons 1,023.
_NAME_LIMIT, _REASON_LIMIT, _VALUE_LIMIT = 255, 1023, 255
_MAX_METRICS = 20  # a metric-math alarm has at most 10 metrics; anything beyond is noise
_CHILD = re.compile(r"""\b(?:ALARM|OK|INSUFFICIENT_DATA)\s*\(\s*("[^"]+"|'[^']+'|[^)\s]+)\s*\)""")


class MetricRef(BaseModel):
    """One metric an alarm watches (a sub-metric of a math expression included)."""

    model_config = ConfigDict(frozen=True)

    namespace: str | None = None
    name: str | None = None
    dimensions: dict[str, str] = Field(default_factory=dict)


class Alarm(BaseModel):
    """What paged, when, in which state, and the metrics, children or labels that say where.

    Every string here has passed `clean`: printable, one line, bounded.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    state: AlarmState
    previous_state: str | None = None
    reason: str
    at: AwareDatetime
    kind: AlarmKind = "metric"
    shape: str = Field(description="How it arrived: 'SNS message', 'EventBridge event', ...")
    arn: str | None = None
    region: str | None = None
    metrics: list[MetricRef] = Field(default_factory=list)
    expression: str | None = Field(None, description="The math or anomaly band expression.")
    rule: str | None = Field(None, description="A composite alarm's rule.")
    children: list[str] = Field(default_factory=list, description="Child alarms named.")
    labels: dict[str, str] = Field(default_factory=dict, description="Alertmanager labels.")
    link: str | None = Field(None, description="Alertmanager's or Prometheus's URL, if sent.")
    original: JsonValue = Field(None, exclude=True, description="The document as received.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dimensions(self) -> dict[str, str]:
        """Every dimension of every metric (sub-metrics of math alarms included)."""
        out: dict[str, str] = {}
        for metric in self.metrics:
            for key, value in metric.dimensions.items():
                out.setdefault(key, value)
        return out

    @property
    def identity(self) -> str:
        """What names this alarm across its state changes: its ARN, else its name."""
        return self.arn or self.name


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
        raise InputError(f"{where}: an alarm notification is a JSON object, got {_kind(data)}")
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
        dims = _pairs(trigger.get("Dimensions") or [], f"{where}: Trigger.Dimensions")
        metrics.append(_metric(trigger.get("Namespace"), trigger.get("MetricName"), dims))
    subs, expression = _sub_metrics(trigger.get("Metrics"), f"{where}: Trigger.Metrics", _SNS)
    metrics += subs
    rule = data.get("AlarmRule")
    children = [
        _name_from_arn(_object(c, f"{where}: TriggeringChildren").get("Arn"))
        for c in (data.get("TriggeringChildren") or [])[:_MAX_METRICS]
    ]
    return Alarm(
        name=_text(data, "AlarmName", where, _NAME_LIMIT),
        state=_state(data.get("NewStateValue"), f"{where}: NewStateValue"),
        previous_state=_optional(data.get("OldStateValue")),
        reason=clean(data.get("NewStateReason", ""), _REASON_LIMIT),
        at=_time(data.get("StateChangeTime"), f"{where}: StateChangeTime"),
        kind=_kind_of(rule, expression, trigger.get("ThresholdMetricId")),
        shape="SNS message",
        arn=_optional(data.get("AlarmArn")),
        region=_optional(data.get("Region")),
        metrics=metrics,
        expression=expression,
        rule=clean(rule, 1024) if isinstance(rule, str) else None,
        children=_children(rule, children),
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
    detail = _object(data.get("detail"), f"{where}: detail")
    resources = data.get("resources")
    arn = resources[0] if isinstance(resources, list) and resources else None
    alarm = _from_alarm_data(detail, f"{where}: detail", fallback_time=data.get("time"))
    return alarm.model_copy(
        update={
            "shape": "EventBridge event",
            "arn": _optional(arn),
            "region": _optional(data.get("region")),
            "original": data,
        }
    )


def _from_lambda_action(data: Mapping[str, Any], where: str) -> Alarm:
    detail = _object(data.get("alarmData"), f"{where}: alarmData")
    alarm = _from_alarm_data(detail, f"{where}: alarmData", fallback_time=data.get("time"))
    return alarm.model_copy(
        update={
            "shape": "Lambda alarm action",
            "arn": _optional(data.get("alarmArn")),
            "region": _optional(data.get("region")),
            "original": data,
        }
    )


def _from_alarm_data(detail: Mapping[str, Any], where: str, *, fallback_time: Any) -> Alarm:
    """EventBridge's `detail` and the Lambda action's `alarmData` share one camelCase shape."""
    state = _object(detail.get("state") or {}, f"{where}.state")
    previous = _object(detail.get("previousState") or {}, f"{where}.previousState")
    config = _object(detail.get("configuration") or {}, f"{where}.configuration")
    metrics, expression = _sub_metrics(
        config.get("metrics"), f"{where}.configuration.metrics", _CAMEL
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
        for item in (alarms if isinstance(alarms, list) else [])[:_MAX_METRICS]:
            if isinstance(item, dict):
                triggering.append(_name_from_arn(item.get("arn")))
    return Alarm(
        name=_text(detail, "alarmName", where, _NAME_LIMIT),
        state=_state(state.get("value"), f"{where}.state.value"),
        previous_state=_optional(previous.get("value")),
        reason=clean(state.get("reason", ""), _REASON_LIMIT),
        at=_time(state.get("timestamp") or fallback_time, f"{where}.state.timestamp"),
        kind=_kind_of(rule, expression, None),
        shape="",
        metrics=metrics,
        expression=expression,
        rule=clean(rule, 1024) if isinstance(rule, str) else None,
        children=_children(rule, triggering),
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
    first = _object(alerts[0], f"{where}: alerts[0]")
    status = data.get("status")
    if status not in ("firing", "resolved"):
        raise InputError(f"{where}: status {shown(status)} is neither 'firing' nor 'resolved'")
    # The group's common labels say what every alert in it shares; the first alert's fill in.
    labels: dict[str, str] = {}
    for source in (data.get("commonLabels"), data.get("groupLabels"), first.get("labels")):
        for key, value in _object(source or {}, f"{where}: labels").items():
            labels.setdefault(clean(key, _VALUE_LIMIT), clean(value, _VALUE_LIMIT))
        if len(labels) > 64:
            break
    annotations = _object(data.get("commonAnnotations") or first.get("annotations") or {}, where)
    reason = annotations.get("summary") or annotations.get("description") or ""
    name = labels.get("alertname") or clean(data.get("groupKey") or "alertmanager group", 255)
    started = first.get("endsAt") if status == "resolved" else first.get("startsAt")
    return Alarm(
        name=clean(name, _NAME_LIMIT),
        state="ALARM" if status == "firing" else "OK",
        reason=clean(reason, _REASON_LIMIT),
        at=_time(started, f"{where}: alerts[0].startsAt"),
        kind="alertmanager",
        shape="Alertmanager webhook",
        arn=clean(data["groupKey"], 512) if isinstance(data.get("groupKey"), str) else None,
        labels=labels,
        link=_optional(data.get("externalURL")),
        original=dict(data),
    )


@dataclass(frozen=True)
class _Keys:
    """How one family of shapes spells a metric-math alarm's metrics."""

    expression: str
    stat: str
    metric: str
    namespace: str
    name: str
    dimensions: str
    pairs: bool  # dimensions as [{name, value}] (SNS) rather than {name: value}


_SNS = _Keys("Expression", "MetricStat", "Metric", "Namespace", "MetricName", "Dimensions", True)
_CAMEL = _Keys("expression", "metricStat", "metric", "namespace", "name", "dimensions", False)


def _sub_metrics(subs: Any, where: str, keys: _Keys) -> tuple[list[MetricRef], str | None]:
    """A metric-math alarm's metrics (where the dimensions are) and its first expression."""
    if subs is None:
        return [], None
    if not isinstance(subs, list):
        raise InputError(f"{where} is not a list")
    metrics: list[MetricRef] = []
    expression = None
    for i, item in enumerate(subs[:_MAX_METRICS]):
        at = f"{where}[{i}]"
        sub = _object(item, at)
        if sub.get(keys.expression):
            expression = expression or clean(sub[keys.expression], 512)
        stat = _object(sub.get(keys.stat) or {}, f"{at}.{keys.stat}")
        metric = _object(stat.get(keys.metric) or {}, f"{at}.{keys.stat}.{keys.metric}")
        if not metric:
            continue
        at_dims = f"{at}.{keys.stat}.{keys.metric}.{keys.dimensions}"
        raw = metric.get(keys.dimensions)
        if keys.pairs:
            dims = _pairs(raw or [], at_dims)
        else:
            dims = {
                clean(k, _VALUE_LIMIT): clean(v, _VALUE_LIMIT)
                for k, v in list(_object(raw or {}, at_dims).items())[:_MAX_METRICS]
            }
        metrics.append(_metric(metric.get(keys.namespace), metric.get(keys.name), dims))
    return metrics, expression


def _kind_of(rule: Any, expression: str | None, threshold_id: Any) -> AlarmKind:
    if isinstance(rule, str) and rule:
        return "composite"
    if threshold_id or (expression and "ANOMALY_DETECTION_BAND" in expression.upper()):
        return "anomaly"
    return "metric-math" if expression else "metric"


def _children(rule: Any, triggering: list[str]) -> list[str]:
    names = [n for n in triggering if n]
    if isinstance(rule, str):
        for match in _CHILD.finditer(rule[:4096]):
            names.append(_name_from_arn(match.group(1).strip("\"'")))
    return list(dict.fromkeys(names))[:_MAX_METRICS]


def _name_from_arn(value: Any) -> str:
    """`arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME` -> NAME; a bare name stays itself."""
    text = clean(value, 512) if isinstance(value, str) else ""
    return clean(text.split(":alarm:", 1)[1] if ":alarm:" in text else text, _NAME_LIMIT)


def _metric(namespace: Any, name: Any, dims: dict[str, str]) -> MetricRef:
    return MetricRef(namespace=_optional(namespace), name=_optional(name), dimensions=dims)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where} is not an object (got {_kind(value)})")
    return value


def _text(data: Mapping[str, Any], key: str, where: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {key} is missing or not a string")
    return clean(value, limit)


def _optional(value: Any) -> str | None:
    return clean(value, 512) if isinstance(value, str) and value else None


def _state(value: Any, where: str) -> AlarmState:
    for state in _STATES:
        if value == state:
            return state
    if value is None:
        raise InputError(f"{where} is missing: expected ALARM, OK or INSUFFICIENT_DATA")
    raise InputError(f"{where}: {shown(value)} is not ALARM, OK or INSUFFICIENT_DATA")


def _time(value: Any, where: str) -> datetime:
    if isinstance(value, str) and len(value) <= 40:
        text = value.strip().replace("Z", "+00:00")
        text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)  # +0000 -> +00:00
        text = re.sub(r"\.(\d{6})\d+", r".\1", text)  # Alertmanager sends nanoseconds
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    raise InputError(f"{where}: {shown(value)} is not a time like 2026-03-02T11:26:00.000+0000")


def _pairs(items: Any, where: str) -> dict[str, str]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InputError(f"{where}: expected a list of {{name, value}} objects")
    return {
        clean(i["name"], _VALUE_LIMIT): clean(i["value"], _VALUE_LIMIT)
        for i in items[:_MAX_METRICS]
        if "name" in i and "value" in i
    }


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else type(value).__name__


def _article(word: str) -> str:
    return "an" if word[:1].upper() in "AEIOUS" else "a"
