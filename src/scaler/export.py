"""Export a window of every signal a policy maps from CloudWatch into a replay file.

Called by `scaler export`. Reads through the same CloudWatchSource, metric table and policy
overrides as the live tick, at the finest resolution CloudWatch still holds for the window's
age, in time slices sized so each GetMetricData call carries as many datapoints as one call may
return (100,800): the fewest calls. Writes rows as each slice arrives (CSV or Parquet), so
memory does not grow with the window.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import numpy as np
from pydantic import BaseModel, ConfigDict

from scaler.errors import AwsCallError, InputError
from scaler.policy import GroupPolicy
from scaler.signals import MINUTE, Window
from scaler.sources.cloudwatch import MAX_QUERIES_PER_CALL, CloudWatchSource, MetricTarget
from scaler.sources.metric_map import MetricSpec

__all__ = [
    "MAX_POINTS_PER_CALL",
    "RETENTION",
    "ExportPlan",
    "ExportSummary",
    "export_window",
    "plan_export",
    "resolution_for_age",
]

MAX_POINTS_PER_CALL = 100_800  # GetMetricData returns at most this many datapoints per call
#: How long CloudWatch keeps each resolution: (age up to, finest period in seconds).
RETENTION = ((timedelta(days=15), 60), (timedelta(days=63), 300), (timedelta(days=455), 3600))
_ADDITIVE_STATS = frozenset({"Sum", "SampleCount"})
FORMATS = ("csv", "parquet")


def resolution_for_age(start: datetime, now: datetime) -> int:
    """The finest period (s) CloudWatch still holds for data as old as `start` is at `now`."""
    age = now - start
    for limit, period in RETENTION:
        if age <= limit:
            return period
    raise InputError(
        f"--start {start:%Y-%m-%dT%H:%MZ} is {age.days} days ago; CloudWatch keeps no "
        "datapoints older than 455 days"
    )


class ExportPlan(BaseModel):
    """What an export reads: the targets at their resolutions, and the time slices."""

    model_config = ConfigDict(frozen=True)

    targets: list[MetricTarget]
    start: datetime
    end: datetime
    resolution_s: int
    slices: list[tuple[datetime, datetime]]
    queries: int
    queries_per_call: int
    points: int

    @property
    def min_calls(self) -> int:
        """The fewest GetMetricData calls that can carry these queries and datapoints."""
        return max(
            math.ceil(self.queries / MAX_QUERIES_PER_CALL),
            math.ceil(self.points / MAX_POINTS_PER_CALL),
        )

    def periods(self) -> dict[str, int]:
        """Each signal's period in seconds (the same in every group unless a policy differs)."""
        out: dict[str, int] = {}
        for target in self.targets:
            for signal, spec in target.metrics.items():
                out[signal] = max(out.get(signal, 0), spec.period_s)
        return out


class ExportSummary(BaseModel):
    """What an export did: datapoints written per signal, calls made."""

    model_config = ConfigDict(frozen=True)

    datapoints: int
    per_signal: dict[str, int]
    calls: int


def _at_resolution(spec: MetricSpec, resolution: int) -> MetricSpec:
    period = max(spec.period_s, math.ceil(spec.period_s / resolution) * resolution)
    if period == spec.period_s:
        return spec
    # A Sum over a longer period holds more minutes: scale it back to the signal's unit.
    factor = spec.period_s / period if spec.stat in _ADDITIVE_STATS else 1.0
    return spec.model_copy(update={"period_s": period, "scale": spec.scale * factor})


def plan_export(
    groups: Sequence[GroupPolicy], *, start: datetime, end: datetime, now: datetime
) -> ExportPlan:
    """The targets and slices for `groups` from `start` up to `end` (both UTC)."""
    if not start < end:
        raise InputError(
            f"--start {start:%Y-%m-%dT%H:%MZ} is not before --end {end:%Y-%m-%dT%H:%MZ}"
        )
    if end > now + timedelta(minutes=1):
        raise InputError(f"--end {end:%Y-%m-%dT%H:%MZ} is in the future (now {now:%H:%MZ})")
    resolution = resolution_for_age(start, now)
    targets = []
    for group in groups:
        base = MetricTarget.build(
            group.name, asg_name=group.asg_name, queue=group.queue_name, overrides=group.metrics
        )
        metrics = {s: _at_resolution(spec, resolution) for s, spec in base.metrics.items()}
        targets.append(base.model_copy(update={"metrics": metrics}))
    periods = [spec.period_s for t in targets for spec in t.metrics.values()]
    if not periods:
        raise InputError("the policy maps no signal to a metric: nothing to export")
    align = math.lcm(*periods)
    first = datetime.fromtimestamp(int(start.timestamp()) // align * align, UTC)
    stop = datetime.fromtimestamp(int(end.timestamp()) // align * align, UTC)
    if stop <= first:
        raise InputError(
            f"--start to --end holds no complete {align // MINUTE}-minute period of this data"
        )
    span = (stop - first).total_seconds()
    points = sum(int(span // p) for p in periods)
    # Queries split evenly over the fewest calls; each slice of time as long as the densest
    # call can carry within one answer's 100,800 datapoints, cut on period boundaries.
    per_call = math.ceil(len(periods) / math.ceil(len(periods) / MAX_QUERIES_PER_CALL))
    densest = max(
        sum(1 / p for p in periods[i : i + per_call]) for i in range(0, len(periods), per_call)
    )
    slice_s = max(align, int(MAX_POINTS_PER_CALL / densest) // align * align)
    slices = []
    at = first
    while at < stop:
        slices.append((at, min(at + timedelta(seconds=slice_s), stop)))
        at = slices[-1][1]
    return ExportPlan(
        targets=targets,
        start=first,
        end=stop,
        resolution_s=resolution,
        slices=slices,
        queries=len(periods),
        queries_per_call=per_call,
        points=points,
    )


def export_window(
    source: CloudWatchSource,
    plan: ExportPlan,
    stream: BinaryIO,
    *,
    file_format: str = "csv",
    on_slice: Callable[[], None] | None = None,
) -> ExportSummary:
    """Fetch each slice and write its datapoints; AwsCallError if any group cannot be read."""
    if file_format not in FORMATS:
        raise InputError(f"--format {file_format!r}: valid formats: {', '.join(FORMATS)}")
    writer: _Writer = _CsvWriter(stream) if file_format == "csv" else _ParquetWriter(stream, plan)
    per_signal: dict[str, int] = {}
    calls = 0
    for first, stop in plan.slices:
        fetched = source.fetch(plan.targets, start=first, end=stop)
        calls += fetched.calls
        if fetched.errors:
            failed = "; ".join(f"{e.group}: {e.error}" for e in fetched.errors)
            raise AwsCallError(f"export stopped, nothing written: {failed}")
        for target in plan.targets:
            window = fetched.windows[target.group]
            for signal, count in writer.add(window).items():
                per_signal[signal] = per_signal.get(signal, 0) + count
        if on_slice:
            on_slice()
    writer.close()
    return ExportSummary(datapoints=sum(per_signal.values()), per_signal=per_signal, calls=calls)


def _points(window: Window) -> tuple[list[str], Any, Any, Any]:
    """A window's finite datapoints, ordered by time then signal: (names, minute, code, value)."""
    names = sorted(window.series)
    if not names:
        return names, np.zeros(0, np.int64), np.zeros(0, np.intp), np.zeros(0)
    grid = np.stack([window.series[n] for n in names], axis=1)  # minute x signal
    minute_index, code = np.nonzero(np.isfinite(grid))
    start = int(window.start.timestamp()) // MINUTE
    return names, start + minute_index, code, grid[minute_index, code]


class _Writer:
    def add(self, window: Window) -> dict[str, int]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _CsvWriter(_Writer):
    def __init__(self, stream: BinaryIO) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        self._csv = csv.writer(self._text, lineterminator="\n")
        self._csv.writerow(["timestamp", "signal", "value", "group"])

    def add(self, window: Window) -> dict[str, int]:
        names, minutes, codes, values = _points(window)
        stamp_of: dict[int, str] = {}
        for minute, code, value in zip(
            minutes.tolist(), codes.tolist(), values.tolist(), strict=True
        ):
            stamp = stamp_of.get(minute)
            if stamp is None:
                stamp = stamp_of[minute] = _iso(minute)
            self._csv.writerow([stamp, names[code], f"{value:.10g}", window.group])
        return {names[c]: int(n) for c, n in enumerate(np.bincount(codes, minlength=len(names)))}

    def close(self) -> None:
        self._text.flush()
        self._text.detach()  # the caller owns the stream


class _ParquetWriter(_Writer):
    def __init__(self, stream: BinaryIO, plan: ExportPlan) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = [
            pa.field("timestamp", pa.timestamp("s", tz="UTC")),
            pa.field("signal", pa.dictionary(pa.int32(), pa.string())),
            pa.field("value", pa.float64()),
            pa.field("group", pa.dictionary(pa.int32(), pa.string())),
        ]
        meta = {"scaler.period_s": json.dumps(plan.periods(), sort_keys=True)}
        self._schema = pa.schema(fields, metadata=meta)
        self._writer = pq.ParquetWriter(stream, self._schema)

    def add(self, window: Window) -> dict[str, int]:
        import pyarrow as pa

        names, minutes, codes, values = _points(window)
        if not len(values):
            return {}
        columns = [
            pa.array(minutes * MINUTE, type=pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), names),
            pa.array(values, type=pa.float64()),
        ]
        columns.append(
            pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(len(values), dtype=np.int32)), [window.group]
            )
        )
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self._schema))
        return {names[c]: int(n) for c, n in enumerate(np.bincount(codes, minlength=len(names)))}

    def close(self) -> None:
        self._writer.close()


def _iso(minute: int) -> str:
    return datetime.fromtimestamp(minute * MINUTE, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
