"""The one table from signals to CloudWatch metrics (SIGNALS.md), and the policy's overrides.

Fleet signals read the metrics EC2 and the CloudWatch agent aggregate by AutoScalingGroupName.
For a metric each instance publishes once per period, the `Average` statistic over the group is
the fleet total divided by the number of reporting instances: the per-instance value SIGNALS.md
asks for (EBSReadOps Average is ops per instance per minute; `Sum` would be the fleet total).
EBS per-minute values need EC2 detailed monitoring; with basic monitoring set `period_s: 300` and
`scale: 0.2` for the ops and bytes signals.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scaler.signals import MINUTE, Signal

__all__ = [
    "DEFAULT_METRICS",
    "TEMPLATE_FIELDS",
    "Dimensions",
    "MetricOverride",
    "MetricSpec",
    "check_signal_names",
    "resolve_metrics",
]

# Placeholders a dimension value may use; filled per group when queries are built.
TEMPLATE_FIELDS = frozenset({"asg", "queue", "group"})
_MAX_DIMENSIONS = 30  # CloudWatch's limit per metric
_STAT = re.compile(r"^(SampleCount|Average|Sum|Minimum|Maximum|(p|tm|wm|tc|ts)\d{1,2}(\.\d+)?)$")

Dimensions = tuple[tuple[str, str], ...]


def _check_stat(value: str) -> str:
    if not _STAT.match(value):
        raise ValueError(
            f"statistic {value!r} is not one CloudWatch knows; use Average, Sum, Minimum, "
            "Maximum, SampleCount or a percentile such as p99"
        )
    return value


def _check_period(value: int) -> int:
    if value < MINUTE or value % MINUTE:
        raise ValueError(f"period_s must be a positive multiple of 60, got {value}")
    return value


def _check_dimensions(value: Any) -> Dimensions:
    pairs = tuple(value.items()) if isinstance(value, Mapping) else tuple(map(tuple, value))
    if len(pairs) > _MAX_DIMENSIONS:
        raise ValueError(f"at most {_MAX_DIMENSIONS} dimensions, got {len(pairs)}")
    for name, template in pairs:
        if not name or not isinstance(template, str) or not template:
            raise ValueError(f"dimension {name!r} needs a non-empty name and value")
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        unknown = fields - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(
                f"dimension {name!r} uses unknown placeholder(s) {sorted(unknown)}; "
                f"valid: {', '.join('{' + f + '}' for f in sorted(TEMPLATE_FIELDS))}"
            )
    return tuple((str(n), str(t)) for n, t in pairs)


class MetricSpec(BaseModel):
    """Where one signal lives in CloudWatch and how its value becomes the signal's unit.

    Dimension values are templates filled per group: `{asg}`, `{queue}`, `{group}`.
    The fetched value is multiplied by `scale`, then divided by the group's in-service
    instances when `per_instance` is set (computed in Python, not metric math, so the same
    arithmetic runs on any source).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(min_length=1, max_length=255)
    metric_name: str = Field(min_length=1, max_length=255)
    dimensions: Dimensions = ()
    stat: str = "Average"
    period_s: int = MINUTE
    scale: float = Field(1.0, gt=0)
    per_instance: bool = False

    _stat = field_validator("stat")(_check_stat)
    _period = field_validator("period_s")(_check_period)
    _dims = field_validator("dimensions", mode="before")(_check_dimensions)

    def dimensions_for(self, *, group: str, asg: str, queue: str) -> list[dict[str, str]]:
        """The query's dimensions with the placeholders filled for one group."""
        values = {"group": group, "asg": asg, "queue": queue}
        return [{"Name": n, "Value": t.format_map(values)} for n, t in self.dimensions]


class MetricOverride(BaseModel):
    """A policy's change to one signal's metric; unset fields keep the table's default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="false: do not fetch this signal at all.")
    namespace: str | None = Field(None, min_length=1, max_length=255)
    metric_name: str | None = Field(None, min_length=1, max_length=255)
    dimensions: Dimensions | None = Field(
        None, description="Replace the default dimensions; values may use {asg} {queue} {group}."
    )
    extra_dimensions: Dimensions = Field(
        (), description="Add to (or replace by name in) the defaults, e.g. cpu: cpu-total."
    )
    stat: str | None = None
    period_s: int | None = None
    scale: float | None = Field(None, gt=0)
    per_instance: bool | None = None

    @field_validator("stat")
    @classmethod
    def _valid_stat(cls, value: str | None) -> str | None:
        return None if value is None else _check_stat(value)

    @field_validator("period_s")
    @classmethod
    def _valid_period(cls, value: int | None) -> int | None:
        return None if value is None else _check_period(value)

    @field_validator("dimensions", "extra_dimensions", mode="before")
    @classmethod
    def _valid_dimensions(cls, value: Any) -> Dimensions | None:
        return None if value is None else _check_dimensions(value)

    def apply(self, base: MetricSpec) -> MetricSpec:
        """`base` with this override's fields laid over it."""
        dims = dict(self.dimensions if self.dimensions is not None else base.dimensions)
        dims.update(self.extra_dimensions)
        changes = {
            k: v
            for k, v in {
                "namespace": self.namespace,
                "metric_name": self.metric_name,
                "stat": self.stat,
                "period_s": self.period_s,
                "scale": self.scale,
                "per_instance": self.per_instance,
            }.items()
            if v is not None
        }
        return MetricSpec.model_validate(
            {**base.model_dump(), **changes, "dimensions": tuple(dims.items())}
        )


_ASG: Dimensions = (("AutoScalingGroupName", "{asg}"),)
_QUEUE: Dimensions = (("QueueName", "{queue}"),)


def _sqs(name: str, stat: str) -> MetricSpec:
    return MetricSpec(namespace="AWS/SQS", metric_name=name, dimensions=_QUEUE, stat=stat)


def _ec2(name: str, stat: str = "Average", period_s: int = MINUTE) -> MetricSpec:
    return MetricSpec(
        namespace="AWS/EC2", metric_name=name, dimensions=_ASG, stat=stat, period_s=period_s
    )


def _agent(name: str) -> MetricSpec:
    return MetricSpec(namespace="CWAgent", metric_name=name, dimensions=_ASG, stat="Average")


DEFAULT_METRICS: Mapping[Signal, MetricSpec] = MappingProxyType(
    {
        Signal.QUEUE_VISIBLE: _sqs("ApproximateNumberOfMessagesVisible", "Maximum"),
        Signal.QUEUE_IN_FLIGHT: _sqs("ApproximateNumberOfMessagesNotVisible", "Maximum"),
        Signal.QUEUE_OLDEST_AGE: _sqs("ApproximateAgeOfOldestMessage", "Maximum"),
        Signal.QUEUE_SENT: _sqs("NumberOfMessagesSent", "Sum"),
        Signal.QUEUE_DELETED: _sqs("NumberOfMessagesDeleted", "Sum"),
        Signal.INSTANCES: MetricSpec(
            namespace="AWS/AutoScaling",
            metric_name="GroupInServiceInstances",
            dimensions=_ASG,
            stat="Average",
        ),
        Signal.CPU_USER: _agent("cpu_usage_user"),
        Signal.CPU_IOWAIT: _agent("cpu_usage_iowait"),
        Signal.CPU_SYSTEM: _agent("cpu_usage_system"),
        Signal.CPU_STEAL: _agent("cpu_usage_steal"),
        Signal.CPU_IDLE: _agent("cpu_usage_idle"),
        Signal.MEM_USED: _agent("mem_used_percent"),
        Signal.EBS_READ_OPS: _ec2("EBSReadOps"),
        Signal.EBS_WRITE_OPS: _ec2("EBSWriteOps"),
        Signal.EBS_READ_BYTES: _ec2("EBSReadBytes"),
        Signal.EBS_WRITE_BYTES: _ec2("EBSWriteBytes"),
        Signal.EBS_BYTE_BALANCE: _ec2("EBSByteBalance%", period_s=5 * MINUTE),
        Signal.EBS_IO_BALANCE: _ec2("EBSIOBalance%", period_s=5 * MINUTE),
        # Maximum keeps the 0/1 meaning: 1 when any instance hit its EBS limit that minute.
        Signal.EBS_THROUGHPUT_EXCEEDED: _ec2("InstanceEBSThroughputExceededCheck", "Maximum"),
        Signal.EBS_IOPS_EXCEEDED: _ec2("InstanceEBSIOPSExceededCheck", "Maximum"),
    }
)

# The application's own metric has no default home: a policy names it or it is not fetched.
_OWN_METRIC_BASE: dict[str, Any] = {"dimensions": _ASG, "stat": "Average"}


def check_signal_names(names: Iterable[str]) -> None:
    """Raise ValueError naming every name that is not a signal, and listing the valid ones."""
    valid = [s.value for s in Signal]
    unknown = sorted(set(names) - set(valid))
    if unknown:
        raise ValueError(f"unknown signal(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def resolve_metrics(overrides: Mapping[str, MetricOverride] | None = None) -> dict[str, MetricSpec]:
    """The table with `overrides` applied: signal name -> spec, for every signal to fetch.

    Raises ValueError for a key that is not a signal (listing the valid ones) and for an
    override of a signal without a default (work_latency) that lacks namespace or metric_name.
    """
    overrides = overrides or {}
    check_signal_names(overrides)
    out: dict[str, MetricSpec] = {}
    for signal in Signal:
        override = overrides.get(signal.value)
        base = DEFAULT_METRICS.get(signal)
        if override is not None and not override.enabled:
            continue
        if base is None:
            if override is None:
                continue
            if override.namespace is None or override.metric_name is None:
                raise ValueError(
                    f"signal {signal.value!r} has no default metric: its override needs "
                    "namespace and metric_name"
                )
            base = MetricSpec(
                namespace=override.namespace,
                metric_name=override.metric_name,
                **_OWN_METRIC_BASE,
            )
        out[signal.value] = override.apply(base) if override is not None else base
    return out
