"""CloudWatch source: every signal of every group in the fewest GetMetricData calls.

One tick costs ceil(queries / 500) calls plus the pages CloudWatch splits large answers into.
Queries from many groups share a call; each query's Id names its group and signal.

What a window holds, per signal:
- a metric with no datapoint in the whole window is *absent* ("source does not report"):
  CloudWatch cannot tell a metric never published from one that went quiet, and rules read an
  absent signal as missing, never as zero;
- a query CloudWatch answered with Forbidden or InternalError is a series of NaN ("no data
  came"), with a warning in the log;
- otherwise a datapoint lands on the minute its period starts (a 5-minute metric fills every
  fifth minute, NaN between), and a period that has not ended by `end` is dropped, so the
  still-open minute never shows a partial Sum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from scaler.aws import DEFAULT_RETRY, RetryPolicy, call_aws, error_code, name_groups
from scaler.errors import AwsCallError, InputError, RetryableAwsError
from scaler.logs import get_logger
from scaler.models import GroupError
from scaler.signals import MINUTE, Series, Signal, Window, floor_minute
from scaler.sources.grid import per_instance, place
from scaler.sources.metric_map import MetricOverride, MetricSpec, resolve_metrics

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef

__all__ = [
    "MAX_QUERIES_PER_CALL",
    "CloudWatchSource",
    "FetchResult",
    "FetchStream",
    "MetricTarget",
    "queue_name_of",
]

MAX_QUERIES_PER_CALL = 500  # GetMetricData's limit on MetricDataQueries
_MAX_PAGES = 1000  # a NextToken chain longer than this is a bug, not data
_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
_SIGNAL_PART = re.compile(r"^[a-z0-9_]+$")
# Errors caused by one query's content: retry the call group by group to isolate the culprit.
_QUERY_FAULTS = frozenset(
    {"ValidationError", "InvalidParameterValue", "InvalidParameterCombination", "MissingParameter"}
)
_NO_DATA_STATUSES = frozenset({"Forbidden", "InternalError"})

log = get_logger(__name__)


def queue_name_of(name_or_url: str) -> str:
    """The queue's name, from a name or a queue URL (CloudWatch's QueueName dimension)."""
    return name_or_url.rstrip("/").rsplit("/", 1)[-1]


class MetricTarget(BaseModel):
    """One scaling group to fetch: its names in AWS and the metric of each signal."""

    model_config = ConfigDict(frozen=True)

    group: str
    asg_name: str
    queue_name: str
    metrics: Mapping[str, MetricSpec]
    account_id: str | None = None  # read in a monitoring account: the account the group is in

    @classmethod
    def build(
        cls,
        group: str,
        *,
        asg_name: str | None = None,
        queue: str | None = None,
        overrides: Mapping[str, MetricOverride] | None = None,
        account_id: str | None = None,
    ) -> MetricTarget:
        """A target with the default metric table plus `overrides` (a policy's `metrics:`);
        `account_id` names the account whose metrics a monitoring account reads."""
        return cls(
            group=group,
            asg_name=asg_name or group,
            queue_name=queue_name_of(queue or group),
            metrics=resolve_metrics(overrides),
            account_id=account_id,
        )


class FetchResult(BaseModel):
    """One fetch: a Window per group that could be read, an error per group that could not."""

    model_config = ConfigDict(frozen=True)

    windows: dict[str, Window]
    errors: list[GroupError]
    calls: int
    queries: int

    @property
    def min_calls(self) -> int:
        """The fewest GetMetricData calls these queries could take: ceil(queries / 500)."""
        return math.ceil(self.queries / MAX_QUERIES_PER_CALL)


@dataclass(frozen=True)
class _Query:
    id: str
    target: int
    signal: str
    spec: MetricSpec
    request: MetricDataQueryTypeDef


@dataclass
class _Run:
    """One fetch in progress: its time range, and what came back by query Id."""

    targets: Sequence[MetricTarget]
    query_start: datetime
    stop: datetime
    # Per query Id: its timestamps and values, as the pages brought them (kept as two lists:
    # pairing them point by point costs more than the rest of the read at thousands of groups).
    points: dict[str, tuple[list[datetime], list[float]]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    errors: dict[int, GroupError] = field(default_factory=dict)
    calls: int = 0


class CloudWatchSource:
    """Reads windows from CloudWatch with GetMetricData; the client is passed in."""

    def __init__(
        self,
        client: CloudWatchClient,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_queries_per_call: int = MAX_QUERIES_PER_CALL,
    ) -> None:
        if not 1 <= max_queries_per_call <= MAX_QUERIES_PER_CALL:
            raise ValueError(f"max_queries_per_call must be 1..{MAX_QUERIES_PER_CALL}")
        self._client = client
        self._retry = retry
        self._per_call = max_queries_per_call

    def fetch(
        self, targets: Sequence[MetricTarget], *, start: datetime, end: datetime
    ) -> FetchResult:
        """Windows of the complete minutes from `start` up to (not including) `end`'s minute."""
        stream = self.stream(targets, start=start, end=end)
        windows: dict[str, Window] = {}
        errors: list[GroupError] = []
        for group, got in stream:
            if isinstance(got, GroupError):
                errors.append(got)
            else:
                windows[group] = got
        return FetchResult(
            windows=windows, errors=errors, calls=stream.calls, queries=stream.queries
        )

    def stream(
        self, targets: Sequence[MetricTarget], *, start: datetime, end: datetime
    ) -> FetchStream:
        """`fetch`, group by group as their answers complete (in `targets`' order): a caller
        that works on each group as it comes holds about one call's groups, not every group's
        datapoints (at 5,000 groups, millions of them)."""
        first, stop = floor_minute(start), floor_minute(end)
        length = int((stop - first).total_seconds()) // MINUTE
        if length <= 0:
            raise InputError(f"empty time range: start {start} is not before end {end}'s minute")
        names = [t.group for t in targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"each group is fetched once; repeated: {', '.join(dupes)}")
        return FetchStream(
            targets,
            fetch_chunk=self._fetch_chunk,
            per_call=self._per_call,
            first=first,
            stop=stop,
            length=length,
        )

    def _fetch_chunk(self, chunk: list[_Query], run: _Run) -> None:
        members = sorted({q.target for q in chunk if q.target not in run.errors})
        chunk = [q for q in chunk if q.target in members]
        if not chunk:
            return
        try:
            self._call_pages(chunk, [run.targets[i].group for i in members], run)
        except AwsCallError as exc:
            if len(members) > 1 and error_code(exc.__cause__ or exc) in _QUERY_FAULTS:
                # One group's queries may be at fault; let the others through on their own.
                for member in members:
                    self._fetch_chunk([q for q in chunk if q.target == member], run)
                return
            for member in members:
                run.errors[member] = GroupError(
                    group=run.targets[member].group,
                    error=str(exc),
                    retryable=isinstance(exc, RetryableAwsError),
                )

    def _call_pages(self, chunk: list[_Query], groups: list[str], run: _Run) -> None:
        request: dict[str, Any] = {
            "MetricDataQueries": [q.request for q in chunk],
            "StartTime": run.query_start,
            "EndTime": run.stop,
            "ScanBy": "TimestampAscending",
        }

        def counted(**kwargs: Any) -> Any:
            run.calls += 1  # every request, retries included, as the bench reports them
            return self._client.get_metric_data(**kwargs)

        token: str | None = None
        for _ in range(_MAX_PAGES):
            page = {**request, **({"NextToken": token} if token else {})}
            response = call_aws(
                "cloudwatch:GetMetricData",
                groups,
                counted,
                retry=self._retry,
                expect="MetricDataResults",
                **page,
            )
            for result in response["MetricDataResults"]:
                qid = result.get("Id", "")
                stamps, values = run.points.setdefault(qid, ([], []))
                got_stamps, got_values = result.get("Timestamps", []), result.get("Values", [])
                count = min(len(got_stamps), len(got_values))
                stamps.extend(got_stamps[:count])
                values.extend(got_values[:count])
                run.status[qid] = result.get("StatusCode", "Complete")
            for message in response.get("Messages", []):
                log.warning(
                    "cloudwatch_message", code=message.get("Code"), text=message.get("Value")
                )
            token = response.get("NextToken")
            if not token:
                return
        raise AwsCallError(
            f"cloudwatch:GetMetricData for {name_groups(groups)}: NextToken still set after "
            f"{_MAX_PAGES} pages"
        )


def _queries(targets: Sequence[MetricTarget]) -> Iterator[_Query]:
    for ti, target in enumerate(targets):
        for si, (signal, spec) in enumerate(target.metrics.items()):
            part = signal if _SIGNAL_PART.match(signal) else f"s{si}"
            qid = f"g{ti}_{part}"
            assert _ID.match(qid), qid  # the Id pattern CloudWatch enforces
            dims = spec.dimensions_for(
                group=target.group, asg=target.asg_name, queue=target.queue_name
            )
            request: MetricDataQueryTypeDef = {
                "Id": qid,
                "MetricStat": {
                    "Metric": {
                        "Namespace": spec.namespace,
                        "MetricName": spec.metric_name,
                        "Dimensions": [{"Name": d["Name"], "Value": d["Value"]} for d in dims],
                    },
                    "Period": spec.period_s,
                    "Stat": spec.stat,
                },
                "ReturnData": True,
            }
            if target.account_id is not None:
                # CloudWatch cross-account observability: the source account of this metric.
                request["AccountId"] = target.account_id
            yield _Query(id=qid, target=ti, signal=signal, spec=spec, request=request)


class FetchStream:
    """One fetch in progress, made by `CloudWatchSource.stream`: iterate it once for (group,
    Window or GroupError), in the targets' order; `calls` and `queries` count what it asked
    (complete once iterated)."""

    def __init__(
        self,
        targets: Sequence[MetricTarget],
        *,
        fetch_chunk: Callable[[list[_Query], _Run], None],
        per_call: int,
        first: datetime,
        stop: datetime,
        length: int,
    ) -> None:
        self._targets, self._fetch_chunk, self._per_call = targets, fetch_chunk, per_call
        self._first, self._length = first, length
        self._queries = list(_queries(targets))
        self._run = _Run(targets=targets, query_start=first, stop=stop)
        self.queries = len(self._queries)

    @property
    def calls(self) -> int:
        """GetMetricData requests made so far, retries included."""
        return self._run.calls

    def __iter__(self) -> Iterator[tuple[str, Window | GroupError]]:
        run, queries = self._run, self._queries
        # Each group's queries, found once: scanning all of them per group is quadratic.
        by_target: dict[int, list[_Query]] = {}
        for query in queries:
            by_target.setdefault(query.target, []).append(query)
        done = 0  # targets before this index have been yielded
        if queries:
            # Every period then starts on a boundary of its own length (5-minute data on :00,
            # :05, ...); the extra minutes before `first` are dropped when placed.
            align = math.lcm(*(q.spec.period_s for q in queries))
            run.query_start = datetime.fromtimestamp(
                int(self._first.timestamp()) // align * align, UTC
            )
            sent = 0
            for chunk in _chunks(queries, self._per_call):
                self._fetch_chunk(chunk, run)
                sent += len(chunk)
                # Queries run in target order: every target whose last query has been sent
                # is complete.
                complete = queries[sent].target if sent < len(queries) else len(self._targets)
                yield from self._complete(range(done, complete), by_target)
                done = complete
        yield from self._complete(range(done, len(self._targets)), by_target)
        log.info(
            "cloudwatch_fetch",
            groups=len(self._targets),
            queries=self.queries,
            calls=run.calls,
            failed=len(run.errors),
        )

    def _complete(
        self, indexes: range, by_target: dict[int, list[_Query]]
    ) -> Iterator[tuple[str, Window | GroupError]]:
        run = self._run
        for ti in indexes:
            target = self._targets[ti]
            if ti in run.errors:
                yield target.group, run.errors[ti]
            else:
                yield (
                    target.group,
                    _window(
                        target, by_target.get(ti, []), run, first=self._first, length=self._length
                    ),
                )
            for query in by_target.get(ti, []):  # what was placed is no longer needed
                run.points.pop(query.id, None)


def _chunks(queries: list[_Query], size: int) -> Iterable[list[_Query]]:
    return (queries[i : i + size] for i in range(0, len(queries), size))


def _window(
    target: MetricTarget,
    queries: list[_Query],
    run: _Run,
    *,
    first: datetime,
    length: int,
) -> Window:
    """One group's window from its own queries' answers."""
    series: dict[str, Series] = {}
    divided: list[str] = []  # per-instance signals, divided once the instance count is placed
    for query in queries:
        points = run.points.get(query.id, ([], []))
        status = run.status.get(query.id)
        if status in _NO_DATA_STATUSES:
            log.warning(
                "cloudwatch_query_failed",
                group=target.group,
                signal=query.signal,
                status=status,
                metric=f"{query.spec.namespace}/{query.spec.metric_name}",
            )
            series[query.signal] = np.full(length, np.nan)
            continue
        if status == "PartialData":
            log.warning("cloudwatch_partial_data", group=target.group, signal=query.signal)
        if not points[0]:
            continue  # absent: CloudWatch holds nothing for this metric in the window
        series[query.signal] = place(points, query.spec, first=first, length=length, stop=run.stop)
        if query.spec.per_instance:
            divided.append(query.signal)
    for signal in divided:
        series[signal] = per_instance(series[signal], series.get(Signal.INSTANCES.value))
        if Signal.INSTANCES.value not in series:
            log.warning("per_instance_without_instances", group=target.group, signal=signal)
    return Window(group=target.group, start=first, length=length, series=series)
