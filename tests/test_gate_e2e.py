"""The cost gate at the product's boundary: `scaler run` as cron runs it, a process a tick.

Each test writes a policy file (the gate at its default unless the test says), seeds a group
on the moto server, and runs `scaler run` once a minute on the command's clock, each run with
its own clients, as a process cron starts would: what the gate remembers between ticks lives
in the state store. Asserted on what changed in AWS and on what the user reads (the report).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

import scaler.cli.common
from scaler.aws import Clients, make_clients
from scaler.cli import EXIT_OK, main
from scaler.control import create_table
from scaler.demo.embedded import LOCAL_CREDENTIALS, LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.lambda_handler import run_invocation
from scaler.signals import Signal
from scaler.sim import scenarios
from scaler.sources.metric_map import resolve_metrics
from tests.aws_faults import inject_fault

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CARRIED = "carried forward from that read"
METRICS_A_READ = len(resolve_metrics())


def seed_idle(clients: Clients, *, now: datetime = NOW) -> str:
    """8 x m5.xlarge at a night-time trough (3 would do), max 20: over-provisioned and calm."""
    window = scenarios.healthy_diurnal(0.1).window.model_copy(update={"group": "idle"})
    return seed_local_aws(
        clients, window, asg_name="idle-asg", queue_name="idle-q", max_size=20, now=now
    ).queue_url


def write_policy(path: Path, *, live: str = "", group: str = "", state: str = "") -> Path:
    """One group, `idle`, stepping at most 4 a tick; the gate at its default unless `live`."""
    where = state or f"  path: {path.parent / 'state.db'}\n"
    path.write_text(
        f"state:\n{where}"
        f"live:\n  max_data_age_minutes: 30\n{live}"
        "groups:\n  - name: idle\n    auto_scaling_group: idle-asg\n    queue: idle-q\n"
        f"{group}    rails:\n      max_step_count: 4\n      scale_in_stabilization_minutes: 3\n"
    )
    return path


def desired(clients: Clients) -> int:
    """The group's desired capacity as AWS reports it."""
    (group,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["idle-asg"])[
        "AutoScalingGroups"
    ]
    return int(group["DesiredCapacity"])


@dataclass(frozen=True)
class Tick:
    """What one run printed (the JSON report) and the group's capacity after it."""

    report: dict[str, Any]
    desired: int

    @property
    def group(self) -> dict[str, Any]:
        (group,) = self.report["groups"]
        return dict(group)

    @property
    def carried(self) -> bool:
        return any(CARRIED in note for note in self.group["advice"]["notes"])


Run = Callable[[Path, int], Tick]


@pytest.fixture
def run(aws: LocalAws, clients: Clients, capsys: pytest.CaptureFixture[str]) -> Run:
    """`scaler run --apply --format json` at NOW + `minute`, a fresh set of clients each."""

    def go(policy: Path, minute: int) -> Tick:
        capsys.readouterr()
        args = ["run", "--policy", str(policy), "--apply", "--format", "json"]
        at = NOW + timedelta(minutes=minute)
        code = main([*args, "--endpoint-url", aws.endpoint_url], clock=lambda: at)
        out = capsys.readouterr().out
        assert code == EXIT_OK, out
        return Tick(json.loads(out), desired(clients))

    return go


def flood(clients: Clients, queue_url: str, messages: int) -> None:
    """`messages` more waiting on the queue, as SQS counts them."""
    for _ in range(0, messages, 10):
        clients.sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(j), "MessageBody": "x"} for j in range(10)],
        )


def backlog_in_cloudwatch(clients: Clients, minutes: list[datetime], visible: list[int]) -> None:
    """The queue's backlog as CloudWatch reports it at `minutes` (the fleet unchanged: 8
    instances, deleting what it did at the trough), so a full read sees it."""
    specs = resolve_metrics()
    values = {Signal.QUEUE_VISIBLE: visible, Signal.QUEUE_DELETED: [550] * len(minutes)}
    values[Signal.INSTANCES] = [8] * len(minutes)
    for signal, series in values.items():
        spec = specs[signal.value]
        dims: Any = spec.dimensions_for(group="idle", asg="idle-asg", queue="idle-q")
        clients.cloudwatch.put_metric_data(
            Namespace=spec.namespace,
            MetricData=[
                {
                    "MetricName": spec.metric_name,
                    "Dimensions": dims,
                    "Timestamp": at,
                    "Value": value / spec.scale,
                }
                for at, value in zip(minutes, series, strict=True)
            ],
        )


@pytest.mark.parametrize(
    ("live", "full_reads"),
    [
        ("", [1, 0, 0, 0, 0, 1]),  # the default gate: SQS only while the scale-in waits
        ("  full_read_every_minutes: 1\n", [1, 1, 1, 1, 1, 1]),  # every tick reads
    ],
)
def test_an_overprovisioned_calm_fleet_is_scaled_in_as_with_every_minute_reads(
    clients: Clients, tmp_path: Path, run: Run, live: str, full_reads: list[int]
) -> None:
    """8 instances where 3 would do, the queue calm: the proposal (3) is carried forward by the
    ticks between reads, the stabilization window (3 min) counts them, and the group steps
    8 -> 4 at minute 4, as it does when every tick reads CloudWatch; then the cooldown."""
    seed_idle(clients)
    policy = write_policy(tmp_path / "p.yaml", live=live)
    ticks = [run(policy, minute) for minute in range(6)]
    assert [t.desired for t in ticks] == [8, 8, 8, 8, 4, 4]
    assert [t.report["full_reads"] for t in ticks] == full_reads
    assert [t.report["metric_queries"] for t in ticks] == [n * METRICS_A_READ for n in full_reads]
    assert [t.carried for t in ticks] == [n == 0 for n in full_reads]
    for t in ticks[:4]:
        assert t.group["advice"]["proposal"] == 3 and t.group["advice"]["data_complete"]
        assert t.group["decision"]["held_by"] == ["scale_in_stabilization"]
    assert ticks[4].group["decision"]["held_by"] == ["max_step"]
    # The group changed (8 -> 4): the next tick reads again rather than carry a read of 8.
    assert ticks[5].group["decision"]["held_by"] == ["cooldown"]


def test_a_queue_that_starts_growing_is_read_at_the_next_tick_and_scaled_out(
    clients: Clients, tmp_path: Path, run: Run
) -> None:
    """Held at 8 (min 8) and calm: SQS only. Messages pile up before minute 2: that tick reads
    CloudWatch (which shows the backlog), and the group is scaled out at once."""
    queue_url = seed_idle(clients)
    policy = write_policy(tmp_path / "p.yaml", group="    min_size: 8\n")
    first, calm = run(policy, 0), run(policy, 1)
    assert (first.report["full_reads"], calm.report["full_reads"]) == (1, 0)
    assert calm.carried and calm.group["advice"]["proposal"] == 8
    flood(clients, queue_url, 200)
    backlog_in_cloudwatch(clients, [NOW, NOW + timedelta(minutes=1)], [20_000, 40_000])
    grown = run(policy, 2)
    assert grown.report["full_reads"] == 1 and not grown.carried
    proposal = grown.group["advice"]["proposal"]
    assert proposal > 8
    assert grown.desired == min(proposal, 8 + 4)  # at most the step limit of 4


def test_ticks_in_separate_processes_share_what_they_read_through_the_state_file(
    aws: LocalAws, clients: Clients, tmp_path: Path
) -> None:
    """The installed `scaler run`, twice, as cron starts it: the second process finds the
    first one's read in the SQLite file and reads only the queue (no GetMetricData)."""
    seed_idle(clients, now=datetime.now(UTC))
    policy = write_policy(tmp_path / "p.yaml", group="    min_size: 8\n")
    scaler = Path(sys.executable).with_name("scaler")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    endpoint = ["--endpoint-url", aws.endpoint_url]
    reports = []
    for _ in range(2):
        done = subprocess.run(
            [str(scaler), "run", "--policy", str(policy), "--format", "json", *endpoint],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert done.returncode == EXIT_OK, done.stderr
        reports.append(json.loads(done.stdout))
    reads = [(r["full_reads"], r["metric_queries"], r["queue_reads"]) for r in reports]
    assert reads == [(1, METRICS_A_READ, 1), (0, 0, 1)]
    (second,) = reports[1]["groups"]
    assert any(CARRIED in note for note in second["advice"]["notes"])


def test_lambda_invocations_share_what_they_read_through_dynamodb(
    aws: LocalAws, clients: Clients, tmp_path: Path
) -> None:
    """Two cold Lambda invocations (each its own clients) a minute apart, state in DynamoDB:
    the second reads only the queue, and proposes what the first read did."""
    seed_idle(clients)
    create_table(clients.dynamodb, "gate-state")
    policy = write_policy(
        tmp_path / "p.yaml",
        group="    min_size: 8\n",
        state="  dynamodb_table: gate-state\n",
    )
    environ = {"SCALER_POLICY": str(policy), "SCALER_STATE": "dynamodb://gate-state"}

    @dataclass
    class Context:
        aws_request_id: str

        def get_remaining_time_in_millis(self) -> int:
            return 60_000

    results = []
    for minute in range(2):
        cold = make_clients(boto3.Session(**LOCAL_CREDENTIALS), endpoint_url=aws.endpoint_url)
        with redirect_stdout(io.StringIO()):
            results.append(
                run_invocation(
                    Context(f"req-{minute}"),
                    clients=cold,
                    environ=environ,
                    now=NOW + timedelta(minutes=minute),
                )
            )
    assert [(r["full_reads"], r["metric_queries"]) for r in results] == [
        (1, METRICS_A_READ),
        (0, 0),
    ]
    proposals = [r["groups"][0]["advice"]["proposal"] for r in results]
    assert proposals == [8, 8]


@pytest.mark.parametrize("how", ["queue deleted", "access denied"])
def test_an_unread_queue_means_a_full_read_never_a_carried_proposal(
    clients: Clients,
    tmp_path: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    """After a full read, SQS cannot say the queue's depth: the next tick reads CloudWatch
    again and proposes from that read (nothing carried), and still scales in when due."""
    queue_url = seed_idle(clients)
    policy = write_policy(tmp_path / "p.yaml")
    first = run(policy, 0)
    assert first.report["full_reads"] == 1
    if how == "queue deleted":
        clients.sqs.delete_queue(QueueUrl=queue_url)
    else:
        made = scaler.cli.common.make_clients

        def denied(*args: Any, **kwargs: Any) -> Clients:
            made_clients = made(*args, **kwargs)
            inject_fault(made_clients.sqs, "GetQueueAttributes", "access_denied")
            return made_clients

        monkeypatch.setattr(scaler.cli.common, "make_clients", denied)
    ticks = [run(policy, minute) for minute in range(1, 5)]
    assert [t.report["full_reads"] for t in ticks] == [1, 1, 1, 1]
    assert not any(t.carried for t in ticks)
    assert [t.desired for t in ticks] == [8, 8, 8, 4]  # minute 4, as when SQS answers
