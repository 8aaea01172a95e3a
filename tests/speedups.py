"""What makes the suite fast without changing what it runs: same answers, less repeated work.

The conftest installs both for every test session (each xdist worker is one).

**moto's GetMetricData in one pass per query.** moto (5.x) compares every datapoint of a
call's time range with every period of every query: a tick reading 17 signals for two groups
over three hours makes about 10^8 comparisons, the largest single share of this suite's time.
`indexed_get_metric_data` finds each query's datapoints once, with moto's own matching rule
(which, when a query names dimensions, does not compare the namespace: kept as is), and deals
them to their periods by arithmetic, so the answer is the same in the same order. Calls with a
math or Metrics Insights expression, or a time range moto rejects, go to moto's own method.
tests/test_speedups.py checks that both answer alike on any data.

**botocore's service models read once per session of tests.** Every `boto3.Session` gets a
fresh loader that parses each service's JSON model again (EC2's alone is megabytes): about a
second of CPU for a full set of scaler's clients, paid by every test and every CLI run.
`shared_model_loader` gives each new session's loader one shared cache of what was parsed; the
models are the same files, and botocore already shares them between one session's clients.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import botocore.loaders
from moto.cloudwatch.models import CloudWatchBackend, Dimension, MetricDatumBase, Statistics

__all__ = ["MOTO_GET_METRIC_DATA", "indexed_get_metric_data", "shared_model_loader"]

MOTO_GET_METRIC_DATA = CloudWatchBackend.get_metric_data


def indexed_get_metric_data(
    self: CloudWatchBackend,
    queries: list[dict[str, Any]],
    start_time: datetime,
    end_time: datetime,
    scan_by: str = "TimestampAscending",
) -> list[dict[str, Any]]:
    """CloudWatchBackend.get_metric_data with each query's datapoints found once."""
    start, end = start_time.replace(microsecond=0), end_time.replace(microsecond=0)
    if start >= end or any("MetricStat" not in query for query in queries):
        return MOTO_GET_METRIC_DATA(self, queries, start_time, end_time, scan_by)
    in_range = [md for md in self.get_all_metrics() if start <= md.timestamp < end]
    # moto sorts each datapoint's dimensions once per period; once per call gives the same.
    sorted_dims = [sorted(md.dimensions) for md in in_range]
    results = []
    for query in queries:
        metric_stat = query["MetricStat"]
        metric = metric_stat["Metric"]
        namespace, name, stat = metric["Namespace"], metric["MetricName"], metric_stat["Stat"]
        unit = metric_stat.get("Unit")
        period = timedelta(seconds=int(metric_stat["Period"]))
        dimensions = sorted(
            Dimension(name=d["Name"], value=d["Value"]) for d in metric.get("Dimensions", [])
        )
        by_period: dict[int, list[MetricDatumBase]] = defaultdict(list)
        for md, dims in zip(in_range, sorted_dims, strict=True):
            if md.name != name or (dims != dimensions if dimensions else md.namespace != namespace):
                continue
            if unit and md.unit != unit:
                continue
            by_period[(md.timestamp - start) // period].append(md)
        values, timestamps = [], []
        for index in sorted(by_period):
            stats = Statistics([stat], start + index * period)
            stats.metric_data = by_period[index]
            values.append(stats.get_statistics_for_type(stat))
            timestamps.append(stats.timestamp)
        if scan_by == "TimestampDescending":
            values.reverse()
            timestamps.reverse()
        if query.get("ReturnData", True):
            results.append(
                {
                    "id": query["Id"],
                    "label": query.get("Label") or f"{name} {stat}",
                    "values": values,
                    "timestamps": timestamps,
                    "status_code": "Complete",
                }
            )
    return results


_PARSED: dict[str | None, dict[tuple[Any, ...], Any]] = {}


def shared_model_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    """botocore.loaders.create_loader, whose loaders share one cache per search path."""
    loader = botocore.loaders.create_loader(search_path_string)
    loader._cache = _PARSED.setdefault(search_path_string, {})
    return loader
