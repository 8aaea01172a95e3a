"""The suite's speed-ups give what they replace: moto's GetMetricData, botocore's model loader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.loaders
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.cloudwatch.models import CloudWatchBackend, MetricDatum

from scaler.demo.embedded import LOCAL_CREDENTIALS
from tests.speedups import MOTO_GET_METRIC_DATA, indexed_get_metric_data

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# An account no other test uses: moto adds the datapoints of that account's queues and groups.
ACCOUNT = "000000000042"

names = st.sampled_from(["ApproximateNumberOfMessagesVisible", "CPUUtilization"])
namespaces = st.sampled_from(["AWS/SQS", "AWS/EC2", "Custom"])
dimensions = st.lists(
    st.fixed_dictionaries(
        {
            "Name": st.sampled_from(["QueueName", "AutoScalingGroupName"]),
            "Value": st.sampled_from(["crash-reports", "crash-asg"]),
        }
    ),
    max_size=2,
)
units = st.sampled_from([None, "Count", "Percent"])
datums = st.builds(
    MetricDatum,
    namespace=namespaces,
    name=names,
    value=st.floats(-1e6, 1e6),
    dimensions=dimensions,
    timestamp=st.integers(0, 4 * 3600).map(lambda s: START + timedelta(seconds=s)),
    unit=units,
)


@st.composite
def queries(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """One MetricStat query as botocore sends it, with the optional fields drawn in or out."""
    metric: dict[str, Any] = {"Namespace": draw(namespaces), "MetricName": draw(names)}
    if draw(st.booleans()):
        metric["Dimensions"] = draw(dimensions)
    stat: dict[str, Any] = {
        "Metric": metric,
        "Period": draw(st.sampled_from([60, 120, 300])),
        "Stat": draw(st.sampled_from(["Sum", "Average", "Minimum", "Maximum", "SampleCount"])),
    }
    unit = draw(units)
    if unit:
        stat["Unit"] = unit
    query: dict[str, Any] = {"Id": f"q{index}", "MetricStat": stat}
    if draw(st.booleans()):
        query["Label"] = "a label"
    if draw(st.booleans()):
        query["ReturnData"] = draw(st.booleans())
    return query


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(datums, max_size=120),
    calls=st.integers(1, 4).flatmap(lambda n: st.tuples(*(queries(i) for i in range(n)))),
    start_s=st.integers(-600, 4 * 3600),
    length_s=st.integers(1, 4 * 3600),
    microsecond=st.integers(0, 999_999),
    scan_by=st.sampled_from(["TimestampAscending", "TimestampDescending"]),
)
def test_get_metric_data_answers_as_moto_does(
    data: list[MetricDatum],
    calls: tuple[dict[str, Any], ...],
    start_s: int,
    length_s: int,
    microsecond: int,
    scan_by: str,
) -> None:
    """Any datapoints and queries: the same values and timestamps, in the same order."""
    backend = CloudWatchBackend("us-east-1", ACCOUNT)
    backend.metric_data = list(data)
    start = START + timedelta(seconds=start_s, microseconds=microsecond)
    end = start + timedelta(seconds=length_s)
    expected = MOTO_GET_METRIC_DATA(backend, list(calls), start, end, scan_by)
    assert indexed_get_metric_data(backend, list(calls), start, end, scan_by) == expected


def test_every_session_reads_the_same_models_and_keeps_its_own_search_path() -> None:
    """Two sessions share parsed models equal to a fresh loader's; boto3's path is added once."""
    loaders = [
        boto3.Session(**LOCAL_CREDENTIALS)._session.get_component("data_loader")  # type: ignore[arg-type]
        for _ in range(2)
    ]
    assert loaders[0] is not loaders[1]
    assert loaders[0]._cache is loaders[1]._cache
    fresh = botocore.loaders.create_loader()
    for service in ("ec2", "autoscaling", "cloudwatch", "dynamodb"):
        model = loaders[0].load_service_model(service, "service-2")
        assert model is loaders[1].load_service_model(service, "service-2")
        assert model == fresh.load_service_model(service, "service-2")
    for loader in loaders:
        assert len(loader.search_paths) == len(set(loader.search_paths))
