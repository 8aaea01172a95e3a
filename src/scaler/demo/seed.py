"""Seed a local AWS (the moto server) with a group whose CloudWatch metrics replay a Window.

For the demo and the tests only: real CloudWatch refuses PutMetricData into the reserved
`AWS/` namespaces, which is exactly where SQS, EC2 and Auto Scaling metrics live.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from scaler.aws import Clients, call_aws
from scaler.signals import Signal, Window, floor_minute
from scaler.sources.metric_map import MetricSpec, resolve_metrics

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

__all__ = ["PUT_BATCH", "SeededGroup", "seed_local_aws"]

PUT_BATCH = 1000  # PutMetricData's limit on datums per call
_LOCAL_AMI = "ami-12c6146b"  # an image moto knows; never used against real AWS


class SeededGroup(BaseModel):
    """What was created, and where the window now sits in time."""

    model_config = ConfigDict(frozen=True)

    asg_name: str
    queue_name: str
    queue_url: str
    launch_template_id: str
    start: datetime
    end: datetime
    datapoints: int
    put_calls: int
    skipped_signals: list[str]


def seed_local_aws(
    clients: Clients,
    window: Window,
    *,
    asg_name: str,
    queue_name: str,
    instance_type: str = "m5.xlarge",
    min_size: int = 0,
    max_size: int | None = None,
    template_version: str = "$Default",
    now: datetime,
    metrics: Mapping[str, MetricSpec] | None = None,
) -> SeededGroup:
    """Create a launch template, an ASG, a queue, and PutMetricData the window ending at `now`.

    The window's last minute becomes the last complete minute before `now`, so
    `CloudWatchSource.fetch(start=now - window.length minutes, end=now)` reads it back.
    Each value is written where the metric table (`metrics`, default: the built-in one)
    reads it, with `scale` and `per_instance` undone; signals without a metric are skipped.
    """
    metrics = dict(metrics) if metrics is not None else resolve_metrics()
    data: Any = {"InstanceType": instance_type, "ImageId": _LOCAL_AMI}  # any type name passes
    template = clients.ec2.create_launch_template(
        LaunchTemplateName=f"{asg_name}-template", LaunchTemplateData=data
    )["LaunchTemplate"]
    desired = _last_count(window)
    clients.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=asg_name,
        LaunchTemplate={
            "LaunchTemplateId": template["LaunchTemplateId"],
            "Version": template_version,
        },
        MinSize=min_size,
        MaxSize=max_size if max_size is not None else max(desired * 4, 10),
        DesiredCapacity=desired,
        AvailabilityZones=[f"{clients.autoscaling.meta.region_name}a"],
    )
    clients.autoscaling.enable_metrics_collection(
        AutoScalingGroupName=asg_name, Granularity="1Minute"
    )
    queue_url = clients.sqs.create_queue(QueueName=queue_name)["QueueUrl"]

    shift = floor_minute(now) - timedelta(minutes=1) - window.end
    by_namespace = _datums(window, metrics, shift, asg_name=asg_name, queue_name=queue_name)
    calls = 0
    for namespace, datums in by_namespace.items():
        for i in range(0, len(datums), PUT_BATCH):
            call_aws(
                "cloudwatch:PutMetricData",
                window.group,
                clients.cloudwatch.put_metric_data,
                Namespace=namespace,
                MetricData=datums[i : i + PUT_BATCH],
            )
            calls += 1
    return SeededGroup(
        asg_name=asg_name,
        queue_name=queue_name,
        queue_url=queue_url,
        launch_template_id=template["LaunchTemplateId"],
        start=window.start + shift,
        end=window.end + shift,
        datapoints=sum(len(d) for d in by_namespace.values()),
        put_calls=calls,
        skipped_signals=sorted(set(window.series) - set(metrics)),
    )


def _last_count(window: Window) -> int:
    counts = window.get(Signal.INSTANCES.value)
    finite = counts[np.isfinite(counts)] if counts is not None else np.array([])
    return max(round(float(finite[-1])), 0) if finite.size else 1


def _datums(
    window: Window,
    metrics: Mapping[str, MetricSpec],
    shift: timedelta,
    *,
    asg_name: str,
    queue_name: str,
) -> dict[str, list[MetricDatumTypeDef]]:
    instances = window.get(Signal.INSTANCES.value)
    out: dict[str, list[MetricDatumTypeDef]] = defaultdict(list)
    for signal, values in window.series.items():
        spec = metrics.get(signal)
        if spec is None:
            continue
        raw = values / spec.scale
        if spec.per_instance:
            raw = raw * (instances if instances is not None else np.nan)
        dims: Any = spec.dimensions_for(group=window.group, asg=asg_name, queue=queue_name)
        for index in np.flatnonzero(np.isfinite(raw)):
            out[spec.namespace].append(
                {
                    "MetricName": spec.metric_name,
                    "Dimensions": dims,
                    "Timestamp": window.time_at(int(index)) + shift,
                    "Value": float(raw[index]),
                }
            )
    return dict(out)
