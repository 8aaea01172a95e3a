"""The advisor's own cost: the queue's depth every tick, CloudWatch only when a moment needs it."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scaler.aws import Clients, RetryPolicy
from scaler.cli import EXIT_OK, main
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.live import GroupAdvice, LastRead, full_read_due
from scaler.models import Advice, GroupError, GroupState
from scaler.sim import scenarios
from scaler.sources.sqs import QueueDepth, read_queue_depths

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=2, max_total_s=2, initial_backoff_s=0.001, max_backoff_s=0.005)
STATE = GroupState(name="w", desired=8, min_size=1, max_size=20, in_service=8)


def last_read(
    *, waiting: int | None = 100, proposal: int | None = 8, minutes_ago: int = 1
) -> LastRead:
    advice = GroupAdvice(
        group="w",
        state=STATE,
        advice=Advice(),
        as_of=NOW - timedelta(minutes=minutes_ago + 2),
        data_age_minutes=1,
        data_complete=True,
        proposal=proposal,
    )
    return LastRead(at=NOW - timedelta(minutes=minutes_ago), waiting=waiting, advice=advice)


def depth(waiting: int) -> QueueDepth:
    return QueueDepth(visible=waiting, in_flight=5, delayed=0)


@pytest.mark.parametrize(
    ("last", "now_waiting", "due"),
    [
        (None, 100, "no earlier read"),
        (last_read(), None, "queue depth unknown"),
        (last_read(waiting=None), 100, "queue depth unknown"),
        (last_read(proposal=12), 100, "open"),  # a capacity change pending: every tick
        (last_read(), 100, None),  # calm, read a minute ago
        (last_read(), 130, None),  # within 1.2 x 100 + 10
        (last_read(), 131, "queue growing"),
        (last_read(waiting=0), 11, "queue growing"),
        (last_read(minutes_ago=9), 100, None),
        (last_read(minutes_ago=10), 100, "due"),
        (last_read(proposal=None), 100, None),  # no opinion is not an open change
    ],
)
def test_full_read_due(last: LastRead | None, now_waiting: int | None, due: str | None) -> None:
    """The queue's trouble, an open finding or the interval order a full read; calm does not."""
    got = full_read_due(
        last,
        depth(now_waiting) if now_waiting is not None else None,
        now=NOW,
        every_minutes=10,
    )
    assert (got is None) if due is None else (got is not None and due in got)


def seed_calm(clients: Clients) -> str:
    """8 x m5.xlarge at a night-time trough, held at 8 by the policy: nothing to do."""
    window = scenarios.healthy_diurnal(0.1).window.model_copy(update={"group": "calm"})
    seeded = seed_local_aws(
        clients, window, asg_name="calm-asg", queue_name="calm-q", max_size=20, now=NOW
    )
    return seeded.queue_url


def ticks_every(aws: LocalAws, policy: Path, count: int, between: list[object]) -> int:
    """`scaler run --every 1s` for `count` ticks, a minute apart on the command's clock.

    `between[i]` (a callable) runs before tick i+1's clock is read; SIGINT ends the loop.
    """
    calls = {"n": 0}

    def clock() -> datetime:
        n = calls["n"]
        calls["n"] += 1
        if 0 < n < len(between) + 1 and callable(between[n - 1]):
            between[n - 1]()
        if n + 1 >= count:
            os.kill(os.getpid(), signal.SIGINT)  # the loop stops after this tick
        return NOW + timedelta(minutes=n)

    args = ["run", "--policy", str(policy), "--every", "1s", "--format", "json"]
    return main([*args, "--endpoint-url", aws.endpoint_url], clock=clock)


POLICY = (
    "state:\n  path: {state}\n"
    "live:\n  max_data_age_minutes: 30\n{live}"
    "groups:\n  - name: calm\n    auto_scaling_group: calm-asg\n    queue: calm-q\n"
    "    min_size: 8\n    max_size: 8\n"
)


@pytest.mark.parametrize(
    ("live", "flood_before_tick", "calm_ticks"),
    [
        ("  full_read_every_minutes: 15\n", None, [False, True, True]),  # read, then depth only
        ("  full_read_every_minutes: 15\n", 2, [False, False, True]),  # grew: read at once
        ("", None, [False, False, False]),  # the default (1): every tick reads
    ],
)
def test_a_calm_queue_reads_cloudwatch_only_when_due(
    aws: LocalAws,
    clients: Clients,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    live: str,
    flood_before_tick: int | None,
    calm_ticks: list[bool],
) -> None:
    """Three ticks a minute apart: what each says about its read, as the user sees it."""
    queue_url = seed_calm(clients)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(state=tmp_path / "state.db", live=live))

    def flood() -> None:
        for i in range(0, 100, 10):
            clients.sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(j), "MessageBody": "x"} for j in range(i, i + 10)],
            )

    between: list[object] = [None] * (len(calm_ticks) - 1)
    if flood_before_tick is not None:
        between[flood_before_tick - 2] = flood
    capsys.readouterr()
    code = ticks_every(aws, policy, len(calm_ticks), between)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert code == EXIT_OK
    assert len(lines) == len(calm_ticks)
    said_calm = []
    for report in lines:
        (group,) = report["groups"]
        notes = group["advice"]["notes"]
        calm = any(n.startswith("queue calm") for n in notes)
        said_calm.append(calm)
        if calm:
            assert group["advice"]["proposal"] is None  # the rails hold between reads
            assert group["advice"]["data_complete"] is False
    assert said_calm == calm_ticks


@pytest.mark.parametrize(
    ("ask_by", "sent", "expected"),
    [
        ("name", 3, QueueDepth(visible=3, in_flight=0, delayed=0)),
        ("url", 2, QueueDepth(visible=2, in_flight=0, delayed=0)),
        ("missing", 0, None),
    ],
)
def test_queue_depth_from_sqs(
    clients: Clients, ask_by: str, sent: int, expected: QueueDepth | None
) -> None:
    """By name or URL, the queue's counts now; a queue that does not exist is an error."""
    url = clients.sqs.create_queue(QueueName="work")["QueueUrl"]
    for i in range(sent):
        clients.sqs.send_message(QueueUrl=url, MessageBody=str(i))
    queue = {"name": "work", "url": url, "missing": "no-such-queue"}[ask_by]
    got = read_queue_depths(clients.sqs, [queue], retry=FAST)[queue]
    if expected is None:
        assert isinstance(got, GroupError) and "GetQueueUrl" in got.error
    else:
        assert got == expected


def test_many_queues_are_read_in_parallel_each_to_its_own_depth(clients: Clients) -> None:
    """Twenty queues at once (SQS has no batch read): each answer lands on its own queue."""
    names = [f"q{i}" for i in range(20)]
    for i, name in enumerate(names):
        url = clients.sqs.create_queue(QueueName=name)["QueueUrl"]
        for j in range(i % 4):
            clients.sqs.send_message(QueueUrl=url, MessageBody=str(j))
    depths = read_queue_depths(clients.sqs, names, retry=FAST, workers=8)
    assert list(depths) == names
    assert [d.visible for d in depths.values() if isinstance(d, QueueDepth)] == [
        i % 4 for i in range(20)
    ]
