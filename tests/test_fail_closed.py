"""Apply mode on data and answers it cannot trust: implausible metrics never scale in, and an
unreadable answer to a call a rail depends on holds the action and says why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.awsrequest import AWSResponse

from scaler.aws import Clients
from scaler.cli import main
from scaler.control import SqliteStateStore
from scaler.controller import run_tick
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.policy import Policy
from scaler.signals import Window
from scaler.sim import scenarios
from scaler.sources.plausible import drop_implausible
from tests.aws_faults import CallCounter
from tests.helpers import FAST_RETRY, window_of

IDLE = scenarios.healthy_diurnal(0.1).window.model_copy(update={"group": "idle"})
NOW = IDLE.end + timedelta(minutes=1)
POLICY = Policy.model_validate(
    {
        "mode": "apply",
        "live": {"max_data_age_minutes": 30},
        "groups": [
            {
                "name": "idle",
                "auto_scaling_group": "idle-asg",
                "queue": "idle-q",
                "rails": {"scale_in_stabilization_minutes": 0},
            }
        ],
    }
)


def with_instances(window: Window, value: float, minutes: int) -> Window:
    """`window` whose last `minutes` instance counts read `value`."""
    series = dict(window.series)
    instances = series["instances"].copy()
    instances[-minutes:] = value
    series["instances"] = instances
    return window.model_copy(update={"series": series})


def desired(clients: Clients) -> int:
    (group,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["idle-asg"])[
        "AutoScalingGroups"
    ]
    return group["DesiredCapacity"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStateStore]:
    s = SqliteStateStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.mark.parametrize(
    ("signal", "value", "named"),
    [
        ("instances", -5.0, "instances read -5"),
        ("instances", 0.0, "instances read 0"),  # the group itself reports 8 in service
        ("instances", 3.5, "instances read 3.5"),
        ("queue_visible", 1e300, "queue_visible read 1e+300"),
        ("queue_sent", -40.0, "queue_sent read -40"),
        ("cpu_user", 250.0, "cpu_user read 250"),
    ],
)
def test_implausible_data_never_scales_in(
    clients: Clients,
    aws: LocalAws,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    signal: str,
    value: float,
    named: str,
) -> None:
    """An idle group (3 would do, 8 run) whose newest data is impossible: 8 stays, said why."""
    series = dict(IDLE.series)
    values = series[signal].copy()
    values[-3:] = value
    series[signal] = values
    seed_local_aws(
        clients,
        IDLE.model_copy(update={"series": series}),
        asg_name="idle-asg",
        queue_name="idle-q",
        max_size=20,
        now=NOW,
    )
    # The group itself runs 8 (seeding sized it from the last, impossible, reading).
    clients.autoscaling.set_desired_capacity(AutoScalingGroupName="idle-asg", DesiredCapacity=8)
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"mode: apply\nstate:\n  path: {tmp_path / 's.db'}\nlive:\n  max_data_age_minutes: 30\n"
        "groups:\n  - name: idle\n    auto_scaling_group: idle-asg\n    queue: idle-q\n"
        "    rails:\n      scale_in_stabilization_minutes: 0\n"
    )
    main(["run", "--policy", str(policy), "--endpoint-url", aws.endpoint_url], clock=lambda: NOW)
    out = capsys.readouterr().out
    assert desired(clients) == 8, out
    assert named in out and "ignored" in out


def test_the_same_idle_group_with_plausible_data_does_scale_in(
    clients: Clients, store: SqliteStateStore
) -> None:
    """The control for the table above: clean data, the same policy, and the group shrinks."""
    seed_local_aws(clients, IDLE, asg_name="idle-asg", queue_name="idle-q", max_size=20, now=NOW)
    run_tick(POLICY, clients, store, now=NOW, environ={})
    assert desired(clients) == 4  # 8 -> 3 advised, stepped by the 50% rail


@pytest.mark.parametrize(
    ("signal", "values", "dropped"),
    [
        ("queue_visible", [10, np.inf, 10], 1),  # CloudWatch refuses inf; a replay may not
        ("queue_visible", [10, -np.inf, np.nan], 1),
        ("queue_oldest_age", [5, 1e300, 5], 1),
        ("mem_used", [40, 100.4, 101], 1),  # rounding over 100 is fine; 101 is not
        ("work_latency", [0.5, 0.6, 0.7], 0),
    ],
)
def test_impossible_values_become_missing(signal: str, values: list[float], dropped: int) -> None:
    """inputs: one signal's readings; expected: how many minutes are dropped as impossible."""
    result = drop_implausible(window_of({signal: values}), in_service=8, max_size=20)
    before = int(np.isnan(np.asarray(values, float)).sum())
    assert int(np.isnan(result.window.series[signal]).sum()) - before == dropped


@pytest.mark.parametrize(
    ("values", "in_service", "dropped"),
    [
        ([8, 8, 8, 8, 8, 8], 8, 0),  # agrees
        ([8, 8, 8, 8, 10, 12], 12, 0),  # a scale-out the metric is catching up with
        ([8, 8, 8, 8, 8, 0], 8, 1),  # reads 0 while 8 are in service
        ([8, -5, 8, 8, 8, 8], 8, 1),  # negative
        ([8, 8, 8, 8, 8, 99], 8, 1),  # above the group's max (20)
    ],
)
def test_instance_counts_are_checked_against_the_group(
    values: list[float], in_service: int, dropped: int
) -> None:
    """inputs: instance readings and the group's in-service count; expected: minutes dropped."""
    window = window_of({"instances": values})
    result = drop_implausible(window, in_service=in_service, max_size=20)
    after = result.window.series["instances"]
    assert int(np.isnan(after).sum()) == dropped
    assert len(result.notes) == (1 if dropped else 0)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


UNREADABLE = {
    "truncated": b"<DescribeInstanceRefreshesResponse><DescribeInstanceRefreshesResult><Inst",
    "html": b"<!doctype html><html><body>Service temporarily unavailable</body></html>",
    "well-formed, wrong": b"<html><body><p>ok</p></body></html>",
}


@pytest.mark.parametrize("operation", ["DescribeInstanceRefreshes", "DescribeScalingActivities"])
@pytest.mark.parametrize("body", list(UNREADABLE))
def test_an_unreadable_answer_a_rail_depends_on_holds_the_action(
    clients: Clients, store: SqliteStateStore, operation: str, body: str
) -> None:
    """A 200 answer that cannot be read is not 'nothing running': the group is not changed."""
    seed_local_aws(clients, IDLE, asg_name="idle-asg", queue_name="idle-q", max_size=20, now=NOW)

    def answer(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 200, {"Content-Type": "text/xml"}, _Raw(UNREADABLE[body]))

    clients.autoscaling.meta.events.register(f"before-send.auto-scaling.{operation}", answer)
    counter = CallCounter(clients.autoscaling)
    report = run_tick(POLICY, clients, store, now=NOW, environ={}, retry=FAST_RETRY)
    (group,) = report.groups
    assert group.status == "failed" and operation in (group.error or "")
    assert counter.mutating == [] and desired(clients) == 8
    assert not report.ok


def test_an_unreadable_describe_groups_answer_is_a_named_error(
    clients: Clients, store: SqliteStateStore
) -> None:
    """An HTML page with status 200 to DescribeAutoScalingGroups: the group is named, not read."""
    seed_local_aws(clients, IDLE, asg_name="idle-asg", queue_name="idle-q", max_size=20, now=NOW)

    def answer(request: Any, **_: Any) -> AWSResponse:
        page = UNREADABLE["well-formed, wrong"]
        return AWSResponse(request.url, 200, {"Content-Type": "text/html"}, _Raw(page))

    clients.autoscaling.meta.events.register(
        "before-send.auto-scaling.DescribeAutoScalingGroups", answer
    )
    report = run_tick(POLICY, clients, store, now=NOW, environ={}, retry=FAST_RETRY)
    (error,) = report.errors
    assert error.group == "idle" and "unreadable" in error.error
    assert not report.ok and report.groups == []
