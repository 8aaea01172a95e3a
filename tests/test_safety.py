"""Apply mode under stalls, crashes, dead holders and damaged state: one actor, audit intact.

Ticks run against the seeded incident on the moto server (real boto3 clients over HTTP);
stalls and crashes are botocore event hooks on one tick's own clients.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from scaler.aws import Clients, make_clients
from scaler.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main
from scaler.control import (
    AuditRecord,
    DynamoStateStore,
    Observation,
    SqliteStateStore,
    StateStoreError,
    StoreDamagedError,
    create_table,
)
from scaler.controller import run_tick
from scaler.demo.embedded import LOCAL_CREDENTIALS, LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.errors import InputError
from scaler.policy import Policy
from scaler.sim import scenarios
from tests.aws_faults import CallCounter, Crash, inject_fault
from tests.helpers import FAST_RETRY, seeded_window

INCIDENT = scenarios.incident()
assert INCIDENT.throttle_onset is not None
TICK = INCIDENT.throttle_onset + timedelta(minutes=9)
ASG = "crash-asg"
# Capacity only (the type opinions off), so each tick's one possible action is SetDesiredCapacity.
POLICY = Policy.model_validate(
    {
        "mode": "apply",
        "groups": [
            {
                "name": "crash-processor",
                "auto_scaling_group": ASG,
                "queue": "crash-reports",
                "max_size": 40,
                "rules": {
                    "iowait_bound": {"enabled": False},
                    "ebs_burst_exhaustion": {"enabled": False},
                },
            }
        ],
    }
)


@pytest.fixture
def seeded(clients: Clients) -> Clients:
    """The incident up to 8 minutes after the throttle: 8 x m5.xlarge, the backlog growing."""
    window = seeded_window(INCIDENT, TICK, "crash-processor")
    seed_local_aws(clients, window, asg_name=ASG, queue_name="crash-reports", max_size=40, now=TICK)
    return clients


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStateStore]:
    s = SqliteStateStore(tmp_path / "state.db")
    yield s
    s.close()


def other_clients(aws: LocalAws) -> Clients:
    """A second tick's own clients (a hook on them never touches the first tick's)."""
    return make_clients(boto3.Session(**LOCAL_CREDENTIALS), endpoint_url=aws.endpoint_url)


def desired(clients: Clients) -> int:
    (group,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])[
        "AutoScalingGroups"
    ]
    return group["DesiredCapacity"]


def capacity_records(store: SqliteStateStore) -> list[AuditRecord]:
    return [r for r in store.audit(ASG) if r.action == "capacity"]


def test_a_tick_stalled_past_its_lease_can_neither_act_nor_record(
    seeded: Clients, aws: LocalAws, store: SqliteStateStore
) -> None:
    """Tick A stalls before acting; B, past A's TTL, takes the group and acts; A wakes: no act."""
    stalled_clients = other_clients(aws)
    entered, release = threading.Event(), threading.Event()

    def stall(**_: Any) -> None:
        entered.set()
        release.wait(30)

    stalled_clients.autoscaling.meta.events.register(
        "before-call.auto-scaling.DescribeScalingActivities", stall
    )
    calls = [CallCounter(seeded.autoscaling), CallCounter(stalled_clients.autoscaling)]
    reports: dict[str, Any] = {}

    def tick_a() -> None:
        reports["a"] = run_tick(
            POLICY, stalled_clients, store, now=TICK, owner="tick-a", environ={}
        )

    a = threading.Thread(target=tick_a)
    a.start()
    assert entered.wait(60), "tick A never reached its stall"
    # B runs six minutes later by its clock: A's five-minute lease has expired, unrenewed.
    b = run_tick(POLICY, seeded, store, now=TICK + timedelta(minutes=6), owner="tick-b", environ={})
    release.set()
    a.join(60)
    (b_group,) = b.groups
    assert b_group.action is not None and b_group.action.result == "applied"
    (a_group,) = reports["a"].groups
    assert a_group.action is not None and a_group.action.result == "failed"
    assert "lease was lost" in (a_group.action.outcome.error or "")
    assert not a_group.action.recorded and not reports["a"].ok
    assert sum(c.count("SetDesiredCapacity") for c in calls) == 1
    assert desired(seeded) == 12
    records = capacity_records(store)
    assert [(r.phase, r.result, r.tick_id.startswith("apply-")) for r in records] == [
        ("intent", None, True),
        ("outcome", "applied", True),
    ]
    assert store.open_intents(ASG) == []


@pytest.mark.parametrize(
    ("silent", "ok", "exit_code"),
    [
        (timedelta(seconds=10), True, EXIT_OK),  # a live holder renewing: left to it
        (timedelta(minutes=2), False, EXIT_FAILED),  # a dead holder: no controller is working
    ],
)
def test_a_lease_left_by_a_dead_holder_fails_the_tick(
    seeded: Clients,
    aws: LocalAws,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    silent: timedelta,
    ok: bool,
    exit_code: int,
) -> None:
    """leased-elsewhere is fine while the holder renews; once it stopped, exit 1 names it."""
    db = tmp_path / "state.db"
    holder = SqliteStateStore(db)
    assert holder.acquire_lease(ASG, "dead-host:42", now=TICK - silent, ttl=timedelta(minutes=5))
    holder.close()
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"state:\n  path: {db}\ngroups:\n  - name: crash-processor\n"
        f"    auto_scaling_group: {ASG}\n    queue: crash-reports\n"
    )
    code = main(
        ["run", "--policy", str(policy), "--apply", "--endpoint-url", aws.endpoint_url],
        clock=lambda: TICK,
    )
    out = capsys.readouterr().out
    assert code == exit_code, out
    assert "leased-elsewhere" in out and desired(seeded) == 8
    assert ("not renewed for 120s" in out) is (not ok)


def test_an_intent_whose_call_never_ran_starts_no_cooldown(
    seeded: Clients, aws: LocalAws, store: SqliteStateStore
) -> None:
    """A crash after the intent, before SetDesiredCapacity: closed next tick, no 300 s wait."""
    crashing = other_clients(aws)

    def crash(**_: Any) -> None:
        raise Crash("before SetDesiredCapacity")

    crashing.autoscaling.meta.events.register("before-call.auto-scaling.SetDesiredCapacity", crash)
    with pytest.raises(Crash):
        run_tick(POLICY, crashing, store, now=TICK, owner="crashed", environ={})
    assert [r.phase for r in store.open_intents(ASG)] == ["intent"]
    later = run_tick(POLICY, seeded, store, now=TICK + timedelta(minutes=1), environ={})
    (closed,) = later.groups[0].action.interrupted  # type: ignore[union-attr]
    assert "did not take effect" in closed.notes[-1]
    assert store.history(ASG, since=TICK).last_action_at is None
    # The next tick acts at once: no cooldown from an action that never happened.
    acted = run_tick(POLICY, seeded, store, now=TICK + timedelta(minutes=2), environ={})
    assert acted.groups[0].action is not None and acted.groups[0].action.result == "applied"
    assert desired(seeded) == 12


def test_a_stop_before_the_intent_leaves_no_open_intent(
    seeded: Clients, store: SqliteStateStore
) -> None:
    """A stop (SIGTERM, Lambda's deadline) during a group: no call, held by `deadline`, not ok."""
    stop = threading.Event()

    def stop_now(**_: Any) -> None:
        stop.set()

    seeded.autoscaling.meta.events.register(
        "before-call.auto-scaling.DescribeScalingActivities", stop_now
    )
    counter = CallCounter(seeded.autoscaling)
    report = run_tick(POLICY, seeded, store, now=TICK, environ={}, stop=stop)
    (group,) = report.groups
    assert group.action is not None and "deadline" in group.action.outcome.rails
    assert counter.mutating == [] and store.open_intents(ASG) == []
    assert not report.ok


def _corrupt_a_middle_page(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 2)
        f.write(b"\xff" * 512)


def test_a_damaged_state_file_is_refused_with_how_to_recover(
    seeded: Clients, aws: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A page damaged in a way SQLite does not notice on open: no tick acts on it (exit 2)."""
    db = tmp_path / "state.db"
    s = SqliteStateStore(db)
    for i in range(400):
        s.record_observation(
            ASG, Observation(at=TICK - timedelta(minutes=i), proposal=i, data_complete=True)
        )
    s.close()
    _corrupt_a_middle_page(db)
    with pytest.raises(StoreDamagedError, match=r"scaler state init"):
        SqliteStateStore(db)
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"state:\n  path: {db}\ngroups:\n  - name: crash-processor\n"
        f"    auto_scaling_group: {ASG}\n    queue: crash-reports\n"
    )
    code = main(["run", "--policy", str(policy), "--apply", "--endpoint-url", aws.endpoint_url])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "damaged" in err and "Traceback" not in err
    assert desired(seeded) == 8


def test_a_locked_state_file_is_a_transient_failure(tmp_path: Path) -> None:
    """Another process holds the write lock: StateStoreError (exit 1), never 'bad input'."""
    db = tmp_path / "state.db"
    SqliteStateStore(db).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StateStoreError) as info:
            SqliteStateStore(db, busy_timeout=0.1)
        assert not isinstance(info.value, InputError)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_dynamodb_throttling_is_retried_within_the_budget(clients: Clients) -> None:
    """One throttle on a state write no longer fails the group: it is retried."""
    create_table(clients.dynamodb, "state")
    store = DynamoStateStore(clients.dynamodb, "state", retry=FAST_RETRY)
    attempts: list[int] = []
    heal = inject_fault(clients.dynamodb, "PutItem", "throttling")

    def heal_after_first(**_: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            return
        heal()

    clients.dynamodb.meta.events.register("before-call.dynamodb.PutItem", heal_after_first)
    store.record_action(ASG, at=TICK, target=5)
    assert store.history(ASG, since=TICK).last_target == 5
    assert len(attempts) >= 2


def test_a_missing_state_table_says_how_to_create_it(
    seeded: Clients,
    aws: LocalAws,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SCALER_STATE=dynamodb://missing: exit 2 naming the table and `scaler state init`."""
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"groups:\n  - name: crash-processor\n    auto_scaling_group: {ASG}\n    queue: q\n"
    )
    monkeypatch.setenv("SCALER_STATE", "dynamodb://missing")
    endpoint = ["--endpoint-url", aws.endpoint_url]
    code = main(["run", "--policy", str(policy), *endpoint], clock=lambda: TICK)
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    text = captured.out + captured.err
    assert "'missing' does not exist" in text and "scaler state init" in text
    assert "Traceback" not in text
    # The fix it names works: the table is made, and the tick runs.
    assert main(["state", "init", *endpoint]) == EXIT_OK
    assert "state table missing ready" in capsys.readouterr().out
    assert main(["run", "--policy", str(policy), *endpoint], clock=lambda: TICK) == EXIT_OK
