"""moto's GetMetricData in one pass per query, for the local AWS (`embedded.local_aws`).

moto (5.x) compares every datapoint of a call's time range with every period of every query: a
tick reading 20 signals for two groups over three hours makes about 10^8 comparisons, most of
the demo's time. `indexed_get_metric_data` finds each query's datapoints once, with moto's own
matching rule (which, when a query names dimensions, does not compare the namespace: kept as
is), and deals them to their periods by arithmetic, so the answer is the same in the same
order. Calls with a math or Metrics Insights expression, or a time range moto rejects, go to
moto's own method. tests/test_speedups.py checks that both answer alike on any data.

Imported only when a local AWS starts (moto is the demo extra's).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from moto.cloudwatch.models import CloudWatchBackend, Dimension, MetricDatumBase, Statistics

__all__ = ["MOTO_GET_METRIC_DATA", "indexed_get_metric_data", "teach_indexed_get_metric_data"]

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


def teach_indexed_get_metric_data() -> None:
    """Answer GetMetricData with `indexed_get_metric_data` in this process's moto."""
    CloudWatchBackend.get_metric_data = indexed_get_metric_data  # type: ignore[method-assign]
