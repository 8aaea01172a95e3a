"""CloudWatch source against the local AWS: mapping, batching, pagination, gaps, round trip."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from hypothesis import given
from hypothesis import strategies as st

from scaler.aws import Clients, RetryPolicy
from scaler.demo.embedded import LOCAL_CREDENTIALS
from scaler.demo.seed import seed_local_aws
from scaler.errors import InputError
from scaler.signals import Signal, Window
from scaler.sources.cloudwatch import (
    MAX_QUERIES_PER_CALL,
    CloudWatchSource,
    MetricTarget,
    queue_name_of,
)
from scaler.sources.grid import evenly_spaced, place
from scaler.sources.metric_map import DEFAULT_METRICS, MetricOverride, MetricSpec, resolve_metrics

NOW = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)  # on a 5-minute boundary: every period complete
FAST = RetryPolicy(max_attempts=4, max_total_s=5, initial_backoff_s=0.001, max_backoff_s=0.005)


def synthetic_window(group: str = "g", minutes: int = 30, end: datetime = NOW) -> Window:
    """A small window with a gap, a 5-minute signal and a per-minute rate, ending before `end`."""
    start = end - timedelta(minutes=minutes)
    rng = np.random.default_rng(7)
    visible = np.arange(minutes, dtype=float) * 10.0
    visible[5:8] = np.nan  # a gap: no datapoint came for three minutes
    balance = np.full(minutes, np.nan)
    aligned = [i for i in range(minutes) if (start + timedelta(minutes=i)).minute % 5 == 0]
    balance[aligned] = np.linspace(100.0, 40.0, len(aligned))
    return Window(
        group=group,
        start=start,
        length=minutes,
        series={
            "queue_visible": visible,
            "queue_sent": rng.uniform(100, 200, minutes).round(1),
            "instances": np.repeat([4.0, 6.0], [minutes // 2, minutes - minutes // 2]),
            "cpu_iowait": rng.uniform(0, 60, minutes).round(2),
            "ebs_read_bytes": rng.uniform(1e9, 5e9, minutes).round(0),
            "ebs_byte_balance": balance,
        },
    )


def count_calls(clients: Clients) -> list[dict[str, Any]]:
    """The API params of every GetMetricData request the client sends, counted at before-call."""
    params_seen: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    def keep_params(params: dict[str, Any], **_: Any) -> None:
        params_seen.append(params)

    def count(**_: Any) -> None:
        sent.append(params_seen[-1])  # before-call fires once per request actually sent

    events = clients.cloudwatch.meta.events
    events.register("before-parameter-build.cloudwatch.GetMetricData", keep_params)
    events.register("before-call.cloudwatch.GetMetricData", count)
    return sent


def assert_same_window(got: Window, want: Window) -> None:
    """Same grid, same signals, same values (NaN where NaN)."""
    assert got.start == want.start
    assert got.length == want.length
    assert sorted(got.series) == sorted(want.series)
    for name, values in want.series.items():
        np.testing.assert_allclose(got.series[name], values, rtol=1e-9, equal_nan=True)


def test_round_trip_seed_then_fetch_returns_the_window(clients: Clients) -> None:
    """What the demo seeder writes, fetch reads back on the same minutes with the same values."""
    window = synthetic_window()
    seeded = seed_local_aws(clients, window, asg_name="workers", queue_name="jobs", now=NOW)
    calls = count_calls(clients)
    target = MetricTarget.build("g", asg_name="workers", queue="jobs")
    result = CloudWatchSource(clients.cloudwatch).fetch(
        [target], start=NOW - timedelta(minutes=window.length), end=NOW
    )
    assert result.errors == []
    assert seeded.start == window.start
    assert_same_window(result.windows["g"], window)
    assert len(calls) == result.calls == 1


def test_metrics_never_published_are_absent_and_gaps_are_nan(clients: Clients) -> None:
    """No datapoint in the window: absent ("does not report"); a missing minute: NaN."""
    window = synthetic_window()
    seed_local_aws(clients, window, asg_name="workers", queue_name="jobs", now=NOW)
    result = CloudWatchSource(clients.cloudwatch).fetch(
        [MetricTarget.build("g", asg_name="workers", queue="jobs")],
        start=NOW - timedelta(minutes=30),
        end=NOW,
    )
    got = result.windows["g"]
    assert not got.has("mem_used")
    assert not got.has("cpu_user")
    assert np.isnan(got.series["queue_visible"][5:8]).all()
    assert np.isfinite(got.series["queue_visible"][8:]).all()


def test_override_reads_a_custom_namespace_and_cpu_dimension(clients: Clients) -> None:
    """A policy override moves a signal to the user's metric; the default then finds nothing."""
    overrides = {
        "cpu_iowait": MetricOverride(
            namespace="Custom/Agent", extra_dimensions={"cpu": "cpu-total"}
        ),
        "work_latency": MetricOverride(namespace="App", metric_name="JobSeconds", stat="Maximum"),
    }
    window = synthetic_window()
    latency = np.linspace(1.0, 9.0, window.length)
    window = Window(
        group="g",
        start=window.start,
        length=window.length,
        series={**window.series, "work_latency": latency},
    )
    seed_local_aws(
        clients,
        window,
        asg_name="workers",
        queue_name="jobs",
        now=NOW,
        metrics=resolve_metrics(overrides),
    )
    source = CloudWatchSource(clients.cloudwatch)
    start = NOW - timedelta(minutes=30)
    custom = MetricTarget.build("g", asg_name="workers", queue="jobs", overrides=overrides)
    plain = MetricTarget.build("h", asg_name="workers", queue="jobs")
    result = source.fetch([custom, plain], start=start, end=NOW)
    np.testing.assert_allclose(
        result.windows["g"].series["cpu_iowait"], window.series["cpu_iowait"]
    )
    np.testing.assert_allclose(result.windows["g"].series["work_latency"], latency)
    assert not result.windows["h"].has("cpu_iowait")
    assert not result.windows["h"].has("work_latency")


def test_open_minute_and_unfinished_periods_are_dropped(clients: Clients) -> None:
    """A datapoint in the still-open minute, or a 5-minute period not yet over, never shows."""
    now = NOW + timedelta(minutes=3, seconds=20)  # 11:03:20: the 11:00 5-minute period is open
    dims = [{"Name": "AutoScalingGroupName", "Value": "workers"}]
    clients.cloudwatch.put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {"MetricName": "EBSByteBalance%", "Dimensions": dims, "Timestamp": t, "Value": v}
            for t, v in [(NOW - timedelta(minutes=5), 80.0), (NOW, 70.0)]
        ],
    )
    clients.cloudwatch.put_metric_data(
        Namespace="CWAgent",
        MetricData=[
            {"MetricName": "cpu_usage_iowait", "Dimensions": dims, "Timestamp": t, "Value": v}
            for t, v in [(NOW + timedelta(minutes=2), 5.0), (NOW + timedelta(minutes=3), 99.0)]
        ],
    )
    result = CloudWatchSource(clients.cloudwatch).fetch(
        [MetricTarget.build("g", asg_name="workers", queue="jobs")],
        start=NOW - timedelta(minutes=10),
        end=now,
    )
    got = result.windows["g"]
    assert got.length == 13  # 10:50 .. 11:02; 11:03 is still open
    balance = got.series["ebs_byte_balance"]
    assert balance[5] == 80.0  # 10:55, on its minute
    assert np.isnan(np.delete(balance, 5)).all()  # NaN between, and 11:00 not complete yet
    assert got.series["cpu_iowait"][-1] == 5.0
    assert not np.any(got.series["cpu_iowait"] == 99.0)


@pytest.mark.parametrize("groups", [1, 50, 600])
def test_calls_are_the_minimum_for_any_number_of_groups(clients: Clients, groups: int) -> None:
    """Queries from all groups share calls: exactly ceil(queries / 500) GetMetricData calls."""
    calls = count_calls(clients)
    targets = [MetricTarget.build(f"group-{i}") for i in range(groups)]
    result = CloudWatchSource(clients.cloudwatch).fetch(
        targets, start=NOW - timedelta(minutes=5), end=NOW
    )
    queries = groups * len(resolve_metrics())
    assert result.queries == queries
    assert len(calls) == result.calls == result.min_calls == math.ceil(queries / 500)
    assert all(len(c["MetricDataQueries"]) <= MAX_QUERIES_PER_CALL for c in calls)
    ids = [q["Id"] for c in calls for q in c["MetricDataQueries"]]
    assert len(set(ids)) == queries
    assert sorted(result.windows) == sorted(t.group for t in targets)


def test_groups_come_as_the_call_with_their_last_query_returns(clients: Clients) -> None:
    """A stream yields each group, in order, once its last query's call is made: a tick holds
    one call's groups of datapoints, not all; and what it yields is what fetch returns."""
    window = synthetic_window()
    seed_local_aws(clients, window, asg_name="workers", queue_name="jobs", now=NOW)
    per_group = len(resolve_metrics())
    per_call = per_group + per_group // 2  # calls end mid-group
    source = CloudWatchSource(clients.cloudwatch, max_queries_per_call=per_call)
    targets = [MetricTarget.build(f"group-{i}") for i in range(5)]
    targets[2] = MetricTarget.build("group-2", asg_name="workers", queue="jobs")  # has data
    span = {"start": NOW - timedelta(minutes=window.length), "end": NOW}
    stream = source.stream(targets, **span)
    seen = [(group, stream.calls, got) for group, got in stream]
    assert [group for group, _, _ in seen] == [t.group for t in targets]
    assert [calls for _, calls, _ in seen] == [
        math.ceil(per_group * (i + 1) / per_call) for i in range(5)
    ]
    assert stream.calls == math.ceil(5 * per_group / per_call) and stream.queries == 5 * per_group
    fetched = source.fetch(targets, **span)
    for group, _, got in seen:
        assert isinstance(got, Window)
        want = fetched.windows[group]
        assert got.series.keys() == want.series.keys()
        assert all(
            np.array_equal(got.series[k], want.series[k], equal_nan=True) for k in got.series
        )
    assert_same_window(seen[2][2], window)  # type: ignore[arg-type]


def test_next_token_pages_are_followed_and_merged() -> None:
    """Pages of one call merge per query, newest-first values land on their minutes.

    The moto server never paginates GetMetricData, so a Stubber plays CloudWatch here.
    """
    client = boto3.Session(**LOCAL_CREDENTIALS).client("cloudwatch")
    only_queue = {s: MetricOverride(enabled=False) for s in Signal if s.value != "queue_visible"}
    target = MetricTarget.build("g", overrides={k.value: v for k, v in only_queue.items()})
    minute = [NOW - timedelta(minutes=k) for k in range(1, 5)]  # 10:59, 10:58, ...
    base = {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "ScanBy": ANY}
    with Stubber(client) as stub:
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {
                        "Id": "g0_queue_visible",
                        "Timestamps": minute[:2],
                        "Values": [9.0, 8.0],
                        "StatusCode": "PartialData",
                    }
                ],
                "NextToken": "page-2",
            },
            base,
        )
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {
                        "Id": "g0_queue_visible",
                        "Timestamps": minute[2:],
                        "Values": [7.0, 6.0],
                        "StatusCode": "Complete",
                    }
                ]
            },
            {**base, "NextToken": "page-2"},
        )
        result = CloudWatchSource(client).fetch([target], start=minute[-1], end=NOW)
        stub.assert_no_pending_responses()
    assert result.calls == 2
    np.testing.assert_array_equal(result.windows["g"].series["queue_visible"], [6, 7, 8, 9])


def test_forbidden_query_is_nan_not_absent() -> None:
    """A query CloudWatch refused reads as "no data came": NaN, so rules cannot judge it.

    The moto server never returns per-query status codes, so a Stubber plays CloudWatch.
    """
    client = boto3.Session(**LOCAL_CREDENTIALS).client("cloudwatch")
    keep = {"queue_visible", "cpu_user"}
    target = MetricTarget.build(
        "g", overrides={s.value: MetricOverride(enabled=False) for s in Signal if s not in keep}
    )
    with Stubber(client) as stub:
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {
                        "Id": "g0_queue_visible",
                        "Timestamps": [],
                        "Values": [],
                        "StatusCode": "Complete",
                    },
                    {
                        "Id": "g0_cpu_user",
                        "Timestamps": [],
                        "Values": [],
                        "StatusCode": "Forbidden",
                    },
                ]
            },
        )
        result = CloudWatchSource(client).fetch([target], start=NOW - timedelta(minutes=3), end=NOW)
    got = result.windows["g"]
    assert not got.has("queue_visible")
    assert got.has("cpu_user")
    assert np.isnan(got.series["cpu_user"]).all()


def test_a_group_whose_query_is_rejected_fails_alone(clients: Clients) -> None:
    """A validation error on a shared call is retried group by group; only the culprit fails."""
    calls = count_calls(clients)

    def reject_group_1(**_: Any) -> None:
        # Runs after count_calls' handler on the same event, so calls[-1] is this request.
        if any(q["Id"].startswith("g1_") for q in calls[-1]["MetricDataQueries"]):
            raise ClientError(
                {
                    "Error": {"Code": "InvalidParameterValue", "Message": "bad dimension"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "GetMetricData",
            )

    clients.cloudwatch.meta.events.register("before-call.cloudwatch.GetMetricData", reject_group_1)
    targets = [MetricTarget.build(name) for name in ("a", "b", "c")]
    result = CloudWatchSource(clients.cloudwatch, retry=FAST).fetch(
        targets, start=NOW - timedelta(minutes=5), end=NOW
    )
    assert sorted(result.windows) == ["a", "c"]
    assert [e.group for e in result.errors] == ["b"]
    assert "GetMetricData" in result.errors[0].error
    assert "'b'" in result.errors[0].error
    assert not result.errors[0].retryable
    assert len(calls) == result.calls == 4  # the shared call, then one per group


def test_per_instance_divides_by_in_service_instances_in_python(clients: Clients) -> None:
    """A fleet-total metric marked per_instance becomes per-instance; zero instances is NaN."""
    window = Window(
        group="g",
        start=NOW - timedelta(minutes=3),
        length=3,
        series={"instances": [2.0, 0.0, 5.0], "ebs_read_ops": [10.0, 4.0, 25.0]},
    )
    fleet = {"ebs_read_ops": MetricOverride(stat="Sum")}
    seed_local_aws(
        clients,
        window,
        asg_name="workers",
        queue_name="jobs",
        now=NOW,
        metrics=resolve_metrics(fleet),
    )
    per_instance = {"ebs_read_ops": MetricOverride(stat="Sum", per_instance=True)}
    target = MetricTarget.build("g", asg_name="workers", queue="jobs", overrides=per_instance)
    got = CloudWatchSource(clients.cloudwatch).fetch([target], start=window.start, end=NOW)
    np.testing.assert_allclose(got.windows["g"].series["ebs_read_ops"], [5.0, np.nan, 5.0])


def test_empty_range_and_repeated_groups_are_input_errors(clients: Clients) -> None:
    """A range with no complete minute, or a group named twice, is refused with a reason."""
    source = CloudWatchSource(clients.cloudwatch)
    with pytest.raises(InputError, match="empty time range"):
        source.fetch([MetricTarget.build("g")], start=NOW, end=NOW + timedelta(seconds=30))
    with pytest.raises(InputError, match="repeated: g"):
        source.fetch(
            [MetricTarget.build("g"), MetricTarget.build("g")],
            start=NOW - timedelta(minutes=5),
            end=NOW,
        )


def test_queue_urls_become_queue_names() -> None:
    """CloudWatch's QueueName dimension takes the name, whether the policy gave a name or URL."""
    assert queue_name_of("https://sqs.us-east-1.amazonaws.com/123456789012/jobs") == "jobs"
    assert queue_name_of("jobs") == "jobs"


def test_default_table_follows_signals_md() -> None:
    """Every signal but work_latency has a default; periods are whole minutes."""
    assert set(DEFAULT_METRICS) == set(Signal) - {Signal.WORK_LATENCY}
    assert DEFAULT_METRICS[Signal.QUEUE_VISIBLE].stat == "Maximum"
    assert DEFAULT_METRICS[Signal.QUEUE_SENT].stat == "Sum"
    assert DEFAULT_METRICS[Signal.EBS_READ_OPS].stat == "Average"  # per instance, by ASG
    assert DEFAULT_METRICS[Signal.EBS_BYTE_BALANCE].period_s == 300
    assert all(spec.period_s % 60 == 0 for spec in DEFAULT_METRICS.values())


@given(st.sets(st.sampled_from([s.value for s in Signal if s is not Signal.WORK_LATENCY])))
def test_disabled_signals_are_exactly_the_ones_not_fetched(disabled: set[str]) -> None:
    """resolve_metrics drops exactly the disabled signals and keeps every other default."""
    got = resolve_metrics({name: MetricOverride(enabled=False) for name in disabled})
    assert set(got) == {s.value for s in DEFAULT_METRICS} - disabled


def test_bad_overrides_name_the_problem() -> None:
    """An unknown signal lists the valid ones; work_latency needs its metric named."""
    with pytest.raises(ValueError, match=r"unknown signal\(s\) cpu_iowiat; valid: queue_visible"):
        resolve_metrics({"cpu_iowiat": MetricOverride()})
    with pytest.raises(ValueError, match="needs namespace and metric_name"):
        resolve_metrics({"work_latency": MetricOverride(stat="p99")})
    with pytest.raises(ValueError, match="multiple of 60"):
        MetricOverride(period_s=90)
    with pytest.raises(ValueError, match="unknown placeholder"):
        MetricOverride(dimensions={"AutoScalingGroupName": "{asg_name}"})


@pytest.mark.parametrize(
    ("seconds_before_now", "values", "expected"),
    [
        # newest first, as ScanBy=TimestampDescending would bring them: placed by time
        ([60, 120, 180], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]),
        # two datapoints in one minute: the later one is kept, whatever the answer's order
        ([150, 180, 120], [2.5, 1.0, 2.0], [2.5, 2.0, math.nan]),
        ([180, 150], [1.0, 2.5], [2.5, math.nan, math.nan]),
        # before the window and in the open minute: dropped
        ([240, 0, 120], [9.0, 9.0, 2.0], [math.nan, 2.0, math.nan]),
        ([], [], None),  # nothing at all: absent
    ],
)
def test_datapoints_land_on_their_minute(
    seconds_before_now: list[int], values: list[float], expected: list[float] | None
) -> None:
    """Each datapoint lands on the minute it starts; the later of two in one minute wins."""
    client = boto3.Session(**LOCAL_CREDENTIALS).client("cloudwatch")
    only_queue = {
        s.value: MetricOverride(enabled=False) for s in Signal if s.value != "queue_visible"
    }
    target = MetricTarget.build("g", overrides=only_queue)
    stamps = [NOW - timedelta(seconds=s) for s in seconds_before_now]
    answer = {"Id": "g0_queue_visible", "Timestamps": stamps, "Values": values}
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", {"MetricDataResults": [answer]})
        result = CloudWatchSource(client).fetch([target], start=NOW - timedelta(minutes=3), end=NOW)
    series = result.windows["g"].series.get("queue_visible")
    if expected is None:
        assert series is None
    else:
        assert series is not None
        np.testing.assert_array_equal(series, expected)


_T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
_BERLIN = timezone(timedelta(hours=1))


def _at(*minutes: int, tz: Any = UTC) -> list[datetime]:
    return [(_T0 + timedelta(minutes=m)).astimezone(tz) for m in minutes]


@pytest.mark.parametrize(
    ("stamps", "period_s", "expected"),
    [
        (_at(*range(10)), 60, (_T0.timestamp(), True)),
        (_at(*reversed(range(10))), 60, (_T0.timestamp(), False)),  # newest first, as answered
        (_at(0, 5, 10, 15), 300, (_T0.timestamp(), True)),  # 5-minute data
        (_at(3, 2, 1, 0, tz=_BERLIN), 60, (_T0.timestamp(), False)),  # another zone
        ([*_at(0, 1), *_at(2, 3, tz=_BERLIN)], 60, (_T0.timestamp(), True)),  # zones mixed
        (_at(0, 1, 3, 4), 60, None),  # a gap
        (_at(0, 2, 1, 3), 60, None),  # out of order, endpoints 3 periods apart
        (_at(0, 1, 1, 3), 60, None),  # a repeated minute
        (_at(0, 5, 10), 60, None),  # spaced wider than the period
        (_at(0, 1), 60, None),  # too few to tell: converted one by one
        ([], 60, None),
    ],
)
def test_evenly_spaced_answers_are_recognised(
    stamps: list[datetime], period_s: int, expected: tuple[float, bool] | None
) -> None:
    assert evenly_spaced(stamps, period_s) == expected


@given(
    count=st.integers(3, 40),
    period_minutes=st.sampled_from([1, 5]),
    offset_s=st.integers(-900, 900),
    length=st.integers(1, 60),
    stop_minute=st.integers(-5, 70),
    newest_first=st.booleans(),
    swap=st.data(),
)
def test_evenly_spaced_datapoints_land_where_the_general_placement_puts_them(
    count: int,
    period_minutes: int,
    offset_s: int,
    length: int,
    stop_minute: int,
    newest_first: bool,
    swap: st.DataObject,
) -> None:
    """The shortcut for one-a-period answers places exactly what sorting each time places."""
    spec = MetricSpec(
        namespace="AWS/SQS", metric_name="M", stat="Maximum", period_s=period_minutes * 60
    )
    stamps = [_T0 + timedelta(seconds=offset_s + k * spec.period_s) for k in range(count)]
    raw = [float(k + 1) for k in range(count)]
    if newest_first:
        stamps, raw = stamps[::-1], raw[::-1]
    grid = {"first": _T0, "length": length, "stop": _T0 + timedelta(minutes=stop_minute)}
    fast = place((stamps, raw), spec, **grid)  # type: ignore[arg-type]
    # Two datapoints swapped: no longer one way, so placed by the general path.
    i = swap.draw(st.integers(0, count - 2))
    stamps[i], stamps[i + 1], raw[i], raw[i + 1] = stamps[i + 1], stamps[i], raw[i + 1], raw[i]
    assert evenly_spaced(stamps, spec.period_s) is None
    general = place((stamps, raw), spec, **grid)  # type: ignore[arg-type]
    assert np.array_equal(fast, general, equal_nan=True)
