"""Readers for the fields of outside documents: each checks the type, makes text safe, and
names where a problem is. Used by `alerts.parse` for every alarm shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scaler.alerts.alarm import AlarmKind, AlarmState, MetricRef
from scaler.alerts.safe import clean, shown
from scaler.errors import InputError
from scaler.policy import is_account_id, is_region

__all__ = [
    "CAMEL_KEYS",
    "MAX_METRICS",
    "NAME_LIMIT",
    "REASON_LIMIT",
    "SNS_KEYS",
    "VALUE_LIMIT",
    "Keys",
    "account_id",
    "children",
    "kind_name",
    "kind_of",
    "metric_ref",
    "name_from_arn",
    "obj",
    "optional",
    "pairs",
    "place",
    "region_code",
    "state",
    "sub_metrics",
    "text",
    "time_of",
    "url",
]

_STATES: tuple[AlarmState, ...] = ("ALARM", "OK", "INSUFFICIENT_DATA")
# CloudWatch's own limits: alarm names 255 characters, state reasons 1,023.
NAME_LIMIT, REASON_LIMIT, VALUE_LIMIT = 255, 1023, 255
MAX_METRICS = 20  # a metric-math alarm has at most 10 metrics; anything beyond is noise
_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]{1,500}")
# arn:PARTITION:cloudwatch:REGION:ACCOUNT:alarm:NAME: where the alarm is, as AWS writes it.
_ALARM_ARN = re.compile(r"arn:aws[a-z-]*:cloudwatch:([^:]*):([^:]*):alarm:.+", re.DOTALL)
_CHILD = re.compile(r"""\b(?:ALARM|OK|INSUFFICIENT_DATA)\s*\(\s*("[^"]+"|'[^']+'|[^)\s]+)\s*\)""")


@dataclass(frozen=True)
class Keys:
    """How one family of shapes spells a metric-math alarm's metrics."""

    expression: str
    stat: str
    metric: str
    namespace: str
    name: str
    dimensions: str
    pairs: bool  # dimensions as [{name, value}] (SNS) rather than {name: value}
    account: str  # the account a cross-account alarm's metric is in (MetricDataQuery.AccountId)


SNS_KEYS = Keys(
    "Expression", "MetricStat", "Metric", "Namespace", "MetricName", "Dimensions", True, "AccountId"
)
CAMEL_KEYS = Keys(
    "expression", "metricStat", "metric", "namespace", "name", "dimensions", False, "accountId"
)


def sub_metrics(subs: Any, where: str, keys: Keys) -> tuple[list[MetricRef], str | None]:
    """A metric-math alarm's metrics (where the dimensions are) and its first expression."""
    if subs is None:
        return [], None
    if not isinstance(subs, list):
        raise InputError(f"{where} is not a list")
    metrics: list[MetricRef] = []
    expression = None
    for i, item in enumerate(subs[:MAX_METRICS]):
        at = f"{where}[{i}]"
        sub = obj(item, at)
        if sub.get(keys.expression):
            expression = expression or clean(sub[keys.expression], 512)
        stat = obj(sub.get(keys.stat) or {}, f"{at}.{keys.stat}")
        metric = obj(stat.get(keys.metric) or {}, f"{at}.{keys.stat}.{keys.metric}")
        if not metric:
            continue
        at_dims = f"{at}.{keys.stat}.{keys.metric}.{keys.dimensions}"
        raw = metric.get(keys.dimensions)
        if keys.pairs:
            dims = pairs(raw or [], at_dims)
        else:
            dims = {
                clean(k, VALUE_LIMIT): clean(v, VALUE_LIMIT)
                for k, v in list(obj(raw or {}, at_dims).items())[:MAX_METRICS]
            }
        ref = metric_ref(metric.get(keys.namespace), metric.get(keys.name), dims)
        account = account_id(sub.get(keys.account), f"{at}.{keys.account}")
        metrics.append(ref.model_copy(update={"account": account}) if account else ref)
    return metrics, expression


def account_id(value: Any, where: str) -> str | None:
    """A 12-digit account id; None when absent; InputError for anything else."""
    return _checked(value, where, is_account_id, "an account id (12 digits)")


def region_code(value: Any, where: str) -> str | None:
    """A region code (us-east-1); None when absent; InputError for anything else."""
    return _checked(value, where, is_region, "a region code like us-east-1")


def _checked(value: Any, where: str, ok: Callable[[object], bool], what: str) -> str | None:
    if value is None or value == "":
        return None
    if not ok(value):
        raise InputError(f"{where}: {shown(value)} is not {what}")
    return str(value)


def place(
    arn: Any,
    where: str,
    *,
    account: tuple[Any, str] = (None, ""),
    region: tuple[Any, str] = (None, ""),
) -> tuple[str | None, str | None]:
    """The account and region an alarm is in: its ARN's (`arn:aws:cloudwatch:REGION:ACCOUNT:
    alarm:NAME`), else the fields that repeat them, each given as (value, where it was read).
    A field that contradicts the ARN is an InputError: one of them is wrong, and a guess
    would diagnose a group in the wrong account."""
    found = _ALARM_ARN.fullmatch(arn) if isinstance(arn, str) and len(arn) <= 2048 else None
    in_arn = (
        (account_id(found.group(2), where), region_code(found.group(1), where))
        if found
        else (None, None)
    )
    said = (account_id(*account), region_code(*region))
    for what, from_arn, from_field, at in (
        ("account", in_arn[0], said[0], account[1]),
        ("region", in_arn[1], said[1], region[1]),
    ):
        if from_arn and from_field and from_arn != from_field:
            raise InputError(
                f"{at}: {what} {from_field} contradicts the alarm's ARN ({where}: {what} "
                f"{from_arn}); send the notification as AWS sent it"
            )
    return in_arn[0] or said[0], in_arn[1] or said[1]


def kind_of(rule: Any, expression: str | None, threshold_id: Any) -> AlarmKind:
    """composite, anomaly, metric-math or metric, from what the alarm carries."""
    if isinstance(rule, str) and rule:
        return "composite"
    if threshold_id or (expression and "ANOMALY_DETECTION_BAND" in expression.upper()):
        return "anomaly"
    return "metric-math" if expression else "metric"


def children(rule: Any, triggering: list[str]) -> list[str]:
    """The child alarms a composite names: its triggering children, then its rule's."""
    names = [n for n in triggering if n]
    if isinstance(rule, str):
        for match in _CHILD.finditer(rule[:4096]):
            names.append(name_from_arn(match.group(1).strip("\"'")))
    return list(dict.fromkeys(names))[:MAX_METRICS]


def name_from_arn(value: Any) -> str:
    """`arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME` -> NAME; a bare name stays itself."""
    raw = clean(value, 512) if isinstance(value, str) else ""
    return clean(raw.split(":alarm:", 1)[1] if ":alarm:" in raw else raw, NAME_LIMIT)


def metric_ref(namespace: Any, name: Any, dims: dict[str, str]) -> MetricRef:
    """A MetricRef from already-cleaned dimensions and raw names."""
    return MetricRef(namespace=optional(namespace), name=optional(name), dimensions=dims)


def obj(value: Any, where: str) -> dict[str, Any]:
    """`value` if it is a JSON object; InputError naming `where` otherwise."""
    if not isinstance(value, dict):
        raise InputError(f"{where} is not an object (got {kind_name(value)})")
    return value


def text(data: Mapping[str, Any], key: str, where: str, limit: int) -> str:
    """A required, non-empty string field, made safe and cut to `limit`."""
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {key} is missing or not a string")
    return clean(value, limit)


def optional(value: Any) -> str | None:
    """An optional string field, made safe; None when absent or not a string."""
    return clean(value, 512) if isinstance(value, str) and value else None


def url(value: Any) -> str | None:
    """An http(s) URL safe to link to (no spaces, quotes or link markup), else None."""
    if isinstance(value, str) and _URL.fullmatch(value):
        return value
    return None


def state(value: Any, where: str) -> AlarmState:
    """ALARM, OK or INSUFFICIENT_DATA; InputError for anything else."""
    for state in _STATES:
        if value == state:
            return state
    if value is None:
        raise InputError(f"{where} is missing: expected ALARM, OK or INSUFFICIENT_DATA")
    raise InputError(f"{where}: {shown(value)} is not ALARM, OK or INSUFFICIENT_DATA")


def time_of(value: Any, where: str) -> datetime:
    """An aware time from the formats AWS and Alertmanager write (nanoseconds too)."""
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


def pairs(items: Any, where: str) -> dict[str, str]:
    """SNS's [{name, value}] dimensions as a dict of safe strings."""
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InputError(f"{where}: expected a list of {{name, value}} objects")
    return {
        clean(i["name"], VALUE_LIMIT): clean(i["value"], VALUE_LIMIT)
        for i in items[:MAX_METRICS]
        if "name" in i and "value" in i
    }


def kind_name(value: Any) -> str:
    """What a JSON value is, for error messages."""
    return "a list" if isinstance(value, list) else type(value).__name__
