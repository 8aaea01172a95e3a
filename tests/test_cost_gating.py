"""The advisor's own cost: the queue's depth every tick, CloudWatch only when a moment needs it."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scaler.aws import Clients, RetryPolicy
from scaler.cli import EXIT_OK, main
from scaler.control import DynamoStateStore, SqliteStateStore, StateStore, create_table
from scaler.control.store import LAST_READ_RETENTION
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.live import GroupAdvice, LastRead, StoredMemory, carry_forward, full_read_due
from scaler.models import Advice, Finding, GroupError, GroupState, Severity
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
        ("", None, [False, True, True]),  # the default (15)
        ("  full_read_every_minutes: 1\n", None, [False, False, False]),  # every tick reads
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
    read: dict[str, object] = {}
    for report in lines:
        (group,) = report["groups"]
        notes = group["advice"]["notes"]
        calm = any(n.startswith("queue calm") for n in notes)
        said_calm.append(calm)
        if calm:  # the last full read's proposal, carried forward on complete data
            assert group["advice"]["proposal"] == read["proposal"] == 8
            assert group["advice"]["data_complete"] is True
        else:
            read = group["advice"]
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


def read_of(
    *,
    proposal: int | None = 8,
    desired: int = 8,
    complete: bool = True,
    findings: tuple[str, ...] = (),
    instance_type: str | None = None,
    minutes_ago: int = 1,
    waiting: int | None = 100,
    in_flight: int | None = 5,
    settings: str | None = "s1",
) -> LastRead:
    """A full read `minutes_ago` before NOW with these conclusions."""
    found = [
        Finding(kind=kind, group="w", start=NOW, end=None, severity=Severity.WARNING, summary=kind)
        for kind in findings
    ]
    advice = GroupAdvice(
        group="w",
        state=STATE.model_copy(update={"desired": desired}),
        advice=Advice(findings=found),
        as_of=NOW - timedelta(minutes=minutes_ago + 2),
        data_age_minutes=1,
        data_complete=complete,
        proposal=proposal,
        instance_type=instance_type,
    )
    return LastRead(
        at=NOW - timedelta(minutes=minutes_ago),
        waiting=waiting,
        in_flight=in_flight,
        settings=settings,
        advice=advice,
    )


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (read_of(), None),  # at its size, nothing found
        (read_of(proposal=None), None),  # no opinion
        (read_of(proposal=3), None),  # a scale-in on complete data: the rails' window holds it
        (read_of(proposal=3, complete=False), "scale-in (8 -> 3) waiting for data"),
        (read_of(proposal=12), "scale-out (8 -> 12)"),
        (read_of(proposal=12, complete=False), "scale-out"),
        (read_of(findings=("iowait_bound",)), "open: iowait_bound"),
        (read_of(instance_type="m5d.xlarge"), "instance type change to m5d.xlarge"),
    ],
)
def test_what_a_read_leaves_open(last: LastRead, expected: str | None) -> None:
    """Open reads are watched every tick; a scale-in on complete data is carried instead."""
    got = last.open
    assert (got is None) if expected is None else (got is not None and expected in got)


@pytest.mark.parametrize(
    ("last", "now_waiting", "now_in_flight", "desired", "settings", "due"),
    [
        (read_of(), 100, 5, 8, "s1", None),
        (read_of(proposal=3), 100, 5, 8, "s1", None),  # the scale-in is carried
        (read_of(), 100, 5, 4, "s1", "desired capacity changed (8 -> 4)"),
        (read_of(), 100, 5, 8, "s2", "policy changed"),
        (read_of(settings=None), 100, 5, 8, "s1", "policy changed"),  # an older read
        (read_of(), 100, 17, 8, "s1", "work in flight growing (5 -> 17)"),
        (read_of(), 100, 16, 8, "s1", None),  # within 1.2 x 5 + 10
        (read_of(in_flight=None), 100, 500, 8, "s1", None),  # an older read: waiting only
        (read_of(minutes_ago=-1), 100, 5, 8, "s1", "newer than this tick"),
        (read_of(minutes_ago=14), 100, 5, 8, "s1", None),
        (read_of(minutes_ago=15), 100, 5, 8, "s1", "due (every 15 min)"),
    ],
)
def test_full_read_due_when_the_group_or_its_policy_changed(
    last: LastRead,
    now_waiting: int,
    now_in_flight: int,
    desired: int,
    settings: str,
    due: str | None,
) -> None:
    """The group's capacity, the policy, more work in flight or the clock order a read."""
    got = full_read_due(
        last,
        QueueDepth(visible=now_waiting, in_flight=now_in_flight, delayed=0),
        now=NOW,
        every_minutes=15,
        desired=desired,
        settings=settings,
    )
    assert (got is None) if due is None else (got is not None and due in got)


@pytest.mark.parametrize(
    ("last", "now_waiting", "desired", "complete", "said"),
    [
        (read_of(proposal=3), 100, 8, True, "proposal 3 carried forward from that read"),
        (read_of(proposal=None), 100, 8, True, "no capacity opinion carried forward"),
        # Each doubt makes the carried proposal incomplete data: no scale-in on it.
        (read_of(proposal=3, complete=False), 100, 8, False, "data was incomplete"),
        (read_of(proposal=3, minutes_ago=15), 100, 8, False, "the last read is 15 min old"),
        (read_of(proposal=3, minutes_ago=-1), 100, 8, False, "the last read is -1 min old"),
        (read_of(proposal=3), 100, 6, False, "desired capacity changed (8 -> 6)"),
        (read_of(proposal=3), 131, 8, False, "the queue grew"),
        (read_of(proposal=3, waiting=None), 100, 8, False, "the queue grew"),
    ],
)
def test_carry_forward(
    last: LastRead, now_waiting: int, desired: int, complete: bool, said: str
) -> None:
    """A calm tick repeats the last read's proposal; complete data only when nothing doubts it."""
    state = STATE.model_copy(update={"desired": desired})
    got = carry_forward(
        last,
        state,
        QueueDepth(visible=now_waiting, in_flight=5, delayed=0),
        now=NOW,
        every_minutes=15,
    )
    assert got.proposal == last.advice.proposal
    assert got.data_complete is complete
    assert got.state == state and got.instance_type is None
    assert said in got.notes[-1] and got.notes[-1].startswith("queue calm")
    if not complete:
        assert "no scale-in on it" in got.notes[-1]


def sqlite_store(tmp_path: Path, clients: Clients) -> StateStore:
    return SqliteStateStore(tmp_path / "state.db")


def dynamodb_store(tmp_path: Path, clients: Clients) -> StateStore:
    create_table(clients.dynamodb, "reads")
    return DynamoStateStore(clients.dynamodb, "reads", retry=FAST)


@pytest.mark.parametrize("make_store", [sqlite_store, dynamodb_store])
@pytest.mark.parametrize(
    ("writes", "keys", "expected"),
    [
        ([{"a": "1", "b": "2"}], ["a", "b", "c"], {"a": "1", "b": "2"}),
        ([{"a": "1"}, {"a": "3"}], ["a"], {"a": "3"}),  # the newer read replaces the older
        ([{f"g{i}": str(i) for i in range(130)}], [f"g{i}" for i in range(130)], None),
        ([], ["a"], {}),
    ],
)
def test_the_state_store_keeps_the_last_reads(
    aws: LocalAws,
    clients: Clients,
    tmp_path: Path,
    make_store: Callable[[Path, Clients], StateStore],
    writes: list[dict[str, str]],
    keys: list[str],
    expected: dict[str, str] | None,
) -> None:
    """Both stores: reads by key, the last write wins, and more keys than one batch holds."""
    store = make_store(tmp_path, clients)
    for minute, reads in enumerate(writes):
        store.write_last_reads(reads, at=NOW + timedelta(minutes=minute))
    want = expected if expected is not None else {k: v for w in writes for k, v in w.items()}
    assert store.read_last_reads(keys) == want
    store.close()


def test_the_sqlite_store_lets_old_reads_go(tmp_path: Path) -> None:
    """A read older than any interval is dropped when a newer one is written."""
    store = SqliteStateStore(tmp_path / "state.db")
    store.write_last_reads({"old": "1"}, at=NOW)
    store.write_last_reads({"new": "2"}, at=NOW + LAST_READ_RETENTION + timedelta(minutes=1))
    assert store.read_last_reads(["old", "new"]) == {"new": "2"}


def test_dynamodb_reads_expire_by_ttl(aws: LocalAws, clients: Clients) -> None:
    """Each read item carries the table's TTL attribute, after the longest interval."""
    store = dynamodb_store(Path(), clients)
    store.write_last_reads({"g": "x"}, at=NOW)
    item = clients.dynamodb.get_item(
        TableName="reads", Key={"pk": {"S": "read#g"}, "sk": {"S": "last"}}
    )["Item"]
    assert int(item["expires_at"]["N"]) == int((NOW + LAST_READ_RETENTION).timestamp())


@pytest.mark.parametrize(
    ("kept", "expected"),
    [
        ("valid", ["g"]),
        ("not json", []),  # written by another version: read again
        ("missing table", []),  # the store failed: read everything, tick goes on
    ],
)
def test_stored_memory_never_guesses(
    aws: LocalAws, clients: Clients, tmp_path: Path, kept: str, expected: list[str]
) -> None:
    """What the store cannot give back as a read is no read: the group is read in full."""
    if kept == "missing table":
        store: StateStore = DynamoStateStore(clients.dynamodb, "nonexistent", retry=FAST)
    else:
        store = SqliteStateStore(tmp_path / "state.db")
        text = read_of().model_dump_json() if kept == "valid" else "{not json"
        store.write_last_reads({"g": text}, at=NOW)
    memory = StoredMemory(store)
    assert sorted(memory.recall(["g"])) == expected
    memory.remember({"h": read_of()}, at=NOW)  # a failed write is not a failed tick
