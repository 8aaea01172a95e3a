"""Fan-out on the local AWS: the scheduled function sends one message per shard to a real SQS
queue, each message is received and handed to the worker as Lambda's event source mapping
does, and every group is ticked exactly once, by its own shard, with its own leases."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from scaler.aws import Clients
from scaler.cli import EXIT_OK, main
from scaler.control import DynamoStateStore, create_table, make_tick_id
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.errors import InputError
from scaler.fanout import ShardMessage, shard_of
from scaler.lambda_handler import TickFailedError, run_invocation, run_worker
from scaler.sim import scenarios
from tests.test_lambda import Context

INCIDENT = scenarios.incident()
assert INCIDENT.throttle_onset is not None
TICK = INCIDENT.throttle_onset + timedelta(minutes=9)
TABLE = "scaler-state"
GROUPS = [f"processor-{i}" for i in range(6)]
PER_WORKER = 2  # six groups, two a worker: three shards
# The minutes before TICK, of which the policy's 30-minute window (plus ten) is seeded: the
# incident's backlog shows in them, and the local AWS takes a third of the time to seed them.
MINUTES = int((TICK - INCIDENT.window.start).total_seconds() // 60) - 1
SEEDED = 40


@dataclass
class Fleet:
    """The seeded groups, the shard queue (with its dead-letter queue) and both functions'
    environments."""

    clients: Clients
    aws: LocalAws
    policy: Path
    queue_url: str
    dead_letters_url: str
    scheduler_env: dict[str, str]
    worker_env: dict[str, str]
    invocations: Iterator[int] = field(default_factory=lambda: iter(range(1, 1000)))

    def desired(self, group: str) -> int:
        """A group's desired capacity as AWS reports it."""
        (asg,) = self.clients.autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[f"{group}-asg"]
        )["AutoScalingGroups"]
        return asg["DesiredCapacity"]

    def receive(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Every message visible on the queue now (the shard queue unless named)."""
        messages: list[dict[str, Any]] = []
        while batch := self.clients.sqs.receive_message(
            QueueUrl=queue_url or self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", []):
            messages.extend(batch)
        return messages

    def work(self, message: dict[str, Any], **kwargs: Any) -> list[str]:
        """One worker invocation for one message, as the event source mapping makes it (batch
        size 1); the message is deleted unless reported failed. Returns the failed ids."""
        event = {"Records": [sqs_record(message)]}
        context = Context(f"worker-{next(self.invocations)}")
        answer = run_worker(event, context, clients=self.clients, environ=self.worker_env, **kwargs)
        failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
        if message["MessageId"] not in failed:
            self.clients.sqs.delete_message(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return failed

    def audit(self, group: str, tick: str) -> list[Any]:
        """The group's capacity decisions for one tick, from the shared state table."""
        store = DynamoStateStore(self.clients.dynamodb, TABLE)
        records = store.audit(f"{group}-asg", tick_id=tick)
        return [r for r in records if r.phase == "outcome" and r.action == "capacity"]


def sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping hands it to a function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:scaler-shards",
        "awsRegion": "us-east-1",
    }


@pytest.fixture
def fleet(clients: Clients, aws: LocalAws, tmp_path: Path) -> Fleet:
    """Six groups in the incident (8 instances each, the advice: 12), a shard queue whose
    redrive policy moves a message received twice to its dead-letter queue, a state table."""
    lines = ["live: {window_minutes: 30}", "groups:"]
    for group in GROUPS:
        window = INCIDENT.window.head(MINUTES).tail(SEEDED).model_copy(update={"group": group})
        seed_local_aws(
            clients, window, asg_name=f"{group}-asg", queue_name=f"{group}-q", max_size=40, now=TICK
        )
        lines += [
            f"  - name: {group}",
            f"    auto_scaling_group: {group}-asg",
            f"    queue: {group}-q",
        ]
    policy = tmp_path / "policy.yaml"
    policy.write_text("\n".join(lines) + "\n")
    create_table(clients.dynamodb, TABLE)
    dead = clients.sqs.create_queue(QueueName="scaler-shard-dead-letters")["QueueUrl"]
    dead_arn = clients.sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 1})
    queue = clients.sqs.create_queue(
        QueueName="scaler-shards", Attributes={"RedrivePolicy": redrive}
    )["QueueUrl"]
    common = {"SCALER_POLICY": str(policy), "SCALER_STATE": f"dynamodb://{TABLE}"}
    return Fleet(
        clients=clients,
        aws=aws,
        policy=policy,
        queue_url=queue,
        dead_letters_url=dead,
        scheduler_env={
            **common,
            "SCALER_SHARD_QUEUE": queue,
            "SCALER_GROUPS_PER_WORKER": str(PER_WORKER),
        },
        worker_env=dict(common),
    )


def reports(out: str) -> list[dict[str, Any]]:
    """The shard reports the workers logged (one JSON line each)."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r for r in lines if "shard" in r]


def history(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`scaler history --policy P --format json`, as a user reads the shared audit log."""
    monkeypatch.setenv("SCALER_STATE", f"dynamodb://{TABLE}")
    args = ["history", "--policy", str(fleet.policy), "--format", "json"]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main([*args, "--endpoint-url", fleet.aws.endpoint_url]) == EXIT_OK
    records: list[dict[str, Any]] = json.loads(out.getvalue())
    return records


def send(fleet: Fleet, *, apply: bool = False, at: datetime = TICK) -> list[dict[str, Any]]:
    """The scheduled invocation in fan-out mode, then the messages it left on the shard queue."""
    env = {**fleet.scheduler_env, **({"SCALER_APPLY": "1"} if apply else {})}
    with redirect_stdout(io.StringIO()):
        sent = run_invocation(Context("scheduler"), clients=fleet.clients, environ=env, now=at)
    assert (sent["mode"], sent["shards"], sent["groups"]) == ("fan-out", 3, len(GROUPS))
    messages = fleet.receive()
    assert sorted(m["MessageId"] for m in messages) == sorted(s["message"] for s in sent["sent"])
    return messages


def shards_of(messages: list[dict[str, Any]]) -> dict[str, int]:
    """Each group's shard, as the messages carry them."""
    bodies = [json.loads(m["Body"]) for m in messages]
    return {group: body["shard"] for body in bodies for group in body["groups"]}


def test_every_group_is_ticked_exactly_once_by_its_shards_worker(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Six groups, two a worker: three messages; three workers tick every group once, at the
    scheduler's minute, and the audit log a user reads has one decision per group."""
    messages = send(fleet)
    assert shards_of(messages) == {g: shard_of(f"{g}-asg", 3) for g in GROUPS}
    capsys.readouterr()
    for message in messages:
        assert fleet.work(message, now=TICK + timedelta(seconds=5)) == []
    ticked = reports(capsys.readouterr().out)
    assert sorted(g["group"] for r in ticked for g in r["groups"]) == GROUPS
    assert {r["tick_id"] for r in ticked} == {make_tick_id(TICK, prefix="dry-run")}
    assert all(g["status"] == "decided" for r in ticked for g in r["groups"])
    assert fleet.receive() == []  # every message done and deleted
    decided = [r for r in history(fleet, monkeypatch) if r["action"] == "capacity"]
    assert sorted(r["group"] for r in decided) == [f"{g}-asg" for g in GROUPS]
    assert {(r["result"], r["target"]) for r in decided} == {("dry-run", 12)}
    assert all(fleet.desired(g) == 8 for g in GROUPS)


def test_a_redelivered_message_does_not_act_twice(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """Apply mode: every group 8 -> 12 once. The same message delivered again (SQS delivers at
    least once) ticks its shard again and changes nothing: the minute's tick id is in the audit
    log. Delivered again after the next minute's message was due, it is not ticked at all."""
    fleet.worker_env["SCALER_APPLY"] = "1"
    messages = send(fleet, apply=True)
    for message in messages:
        assert fleet.work(message, now=TICK + timedelta(seconds=5)) == []
    assert [fleet.desired(g) for g in GROUPS] == [12] * len(GROUPS)
    largest = max(messages, key=lambda m: len(json.loads(m["Body"])["groups"]))
    groups = json.loads(largest["Body"])["groups"]
    capsys.readouterr()
    assert fleet.work(largest, now=TICK + timedelta(seconds=40)) == []
    (again,) = reports(capsys.readouterr().out)
    assert [g["action"]["duplicate"] for g in again["groups"]] == [True] * len(groups)
    assert [fleet.desired(g) for g in GROUPS] == [12] * len(GROUPS)
    tick = make_tick_id(TICK, prefix="apply")
    assert [len(fleet.audit(g, tick)) for g in GROUPS] == [1] * len(GROUPS)
    late = fleet.work(largest, now=TICK + timedelta(minutes=2))
    assert late == [largest["MessageId"]]
    assert reports(capsys.readouterr().out) == []  # not ticked
    assert [len(fleet.audit(g, tick)) for g in GROUPS] == [1] * len(GROUPS)


def test_a_duplicate_delivered_while_the_first_still_runs_finds_the_lease_held(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """Apply mode, a group's lease held by another worker that is still renewing it (the same
    message delivered twice at once): this worker leaves that group alone, acts on the rest,
    and its message is done."""
    fleet.worker_env["SCALER_APPLY"] = "1"
    messages = send(fleet, apply=True)
    largest = max(messages, key=lambda m: len(json.loads(m["Body"])["groups"]))
    busy, *rest = json.loads(largest["Body"])["groups"]
    store = DynamoStateStore(fleet.clients.dynamodb, TABLE)
    assert store.acquire_lease(f"{busy}-asg", "lambda:first", now=TICK, ttl=timedelta(minutes=5))
    capsys.readouterr()
    assert fleet.work(largest, now=TICK + timedelta(seconds=5)) == []
    (report,) = reports(capsys.readouterr().out)
    status = {g["group"]: g["status"] for g in report["groups"]}
    assert status == {busy: "leased-elsewhere", **dict.fromkeys(rest, "decided")}
    assert [fleet.desired(g) for g in [busy, *rest]] == [8] + [12] * len(rest)


def deny_reading(clients: Clients, asg: str) -> None:
    """AWS refuses to describe `asg` (AccessDenied), as a missing grant or a wrong account
    would: every other group reads as usual."""

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if asg in params.get("AutoScalingGroupNames", []):
            error = {"Code": "AccessDenied", "Message": f"not authorized to describe {asg}"}
            raise ClientError({"Error": error}, "DescribeAutoScalingGroups")

    clients.autoscaling.meta.events.register(
        "before-parameter-build.auto-scaling.DescribeAutoScalingGroups", refuse
    )


def test_a_shard_that_hits_an_aws_error_does_not_hold_back_the_others(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """One shard's group cannot be read: that shard's message is reported failed (and, once SQS
    gives it back, lands in the dead-letter queue naming its groups and minute); the other
    shards' groups are ticked as if nothing happened."""
    messages = send(fleet)
    broken = shard_of("processor-4-asg", 3)
    deny_reading(fleet.clients, "processor-4-asg")
    failed = [i for m in messages for i in fleet.work(m, now=TICK + timedelta(seconds=5))]
    (bad,) = [m for m in messages if json.loads(m["Body"])["shard"] == broken]
    assert failed == [bad["MessageId"]]
    ticked = reports(capsys.readouterr().out)
    decided = sorted(g["group"] for r in ticked for g in r["groups"] if g["status"] == "decided")
    fine = [g for g in GROUPS if shard_of(f"{g}-asg", 3) != broken]
    assert decided == fine
    tick = make_tick_id(TICK, prefix="dry-run")
    assert {g: len(fleet.audit(g, tick)) for g in GROUPS} == {g: int(g in fine) for g in GROUPS}
    # The worker's time is up (its visibility timeout): SQS's redrive policy takes it from here.
    fleet.clients.sqs.change_message_visibility(
        QueueUrl=fleet.queue_url, ReceiptHandle=bad["ReceiptHandle"], VisibilityTimeout=0
    )
    assert fleet.receive() == []
    (dead,) = fleet.receive(fleet.dead_letters_url)
    body = json.loads(dead["Body"])
    assert (body["groups"], body["tick"]) == (
        ["processor-4"],
        TICK.isoformat().replace("+00:00", "Z"),
    )


@pytest.fixture
def policy_only(clients: Clients, tmp_path: Path) -> dict[str, str]:
    """A policy of groups no AWS has (nothing to seed), a state table and a shard queue."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("groups:\n" + "".join(f"  - name: {g}\n" for g in GROUPS))
    create_table(clients.dynamodb, TABLE)
    queue = clients.sqs.create_queue(QueueName="scaler-shards")["QueueUrl"]
    return {"SCALER_POLICY": str(policy), "SCALER_STATE": f"dynamodb://{TABLE}", "QUEUE": queue}


@pytest.mark.parametrize(
    ("queue", "per_worker", "fans_out"),
    [
        (False, "2", False),  # no shard queue: the single invocation ticks every group
        (True, "6", False),  # one worker's worth of groups: ticked inline
        (True, "", False),  # the default (100 a worker)
        (True, "5", True),  # more than one worker's worth: two shards
        (True, "1", True),
    ],
)
def test_only_a_fleet_larger_than_one_worker_fans_out(
    clients: Clients, policy_only: dict[str, str], queue: bool, per_worker: str, fans_out: bool
) -> None:
    """The single invocation stays the default; the groups here do not exist, so an inline
    tick fails naming them, and a fan-out only sends."""
    env = {k: v for k, v in policy_only.items() if k != "QUEUE"}
    env["SCALER_GROUPS_PER_WORKER"] = per_worker
    if queue:
        env["SCALER_SHARD_QUEUE"] = policy_only["QUEUE"]
    with redirect_stdout(io.StringIO()):
        if fans_out:
            sent = run_invocation(Context(), clients=clients, environ=env, now=TICK)
            assert sent["mode"] == "fan-out"
        else:
            with pytest.raises(TickFailedError, match="processor-0"):
                run_invocation(Context(), clients=clients, environ=env, now=TICK)
    left = clients.sqs.receive_message(QueueUrl=policy_only["QUEUE"], MaxNumberOfMessages=10)
    assert bool(left.get("Messages")) == fans_out


def test_a_group_stays_in_its_shard_from_one_minute_to_the_next(
    clients: Clients, policy_only: dict[str, str]
) -> None:
    """Two scheduled minutes: the same shards, each named for the same groups."""
    queue = policy_only["QUEUE"]
    env = {"SCALER_POLICY": policy_only["SCALER_POLICY"], "SCALER_SHARD_QUEUE": queue}
    env["SCALER_GROUPS_PER_WORKER"] = str(PER_WORKER)
    minutes = []
    for at in (TICK, TICK + timedelta(minutes=1)):
        with redirect_stdout(io.StringIO()):
            run_invocation(Context(), clients=clients, environ=env, now=at)
        messages = clients.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        for message in messages["Messages"]:
            clients.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        minutes.append(shards_of(messages["Messages"]))
    assert minutes[0] == minutes[1]
    assert sorted(minutes[0]) == GROUPS


@pytest.mark.parametrize(
    ("queue_suffix", "remaining_ms", "why"),
    [
        ("-gone", 120_000, "queue does not exist"),  # a queue that is not there
        ("", 19_000, "no time left"),  # inside the 20 s margin: no send is started
    ],
)
def test_shards_that_cannot_be_sent_fail_the_scheduled_invocation(
    clients: Clients, policy_only: dict[str, str], queue_suffix: str, remaining_ms: int, why: str
) -> None:
    """The invocation fails (its Errors alarm), naming each shard not sent and why."""
    env = {
        "SCALER_POLICY": policy_only["SCALER_POLICY"],
        "SCALER_SHARD_QUEUE": policy_only["QUEUE"] + queue_suffix,
        "SCALER_GROUPS_PER_WORKER": "2",
    }
    with redirect_stdout(io.StringIO()), pytest.raises(TickFailedError) as failed:
        run_invocation(Context(remaining_ms=remaining_ms), clients=clients, environ=env, now=TICK)
    shards = {shard_of(g, 3) for g in GROUPS}  # the groups' own names: their ASGs' here
    assert str(failed.value).count(why) == len(shards)
    assert str(failed.value).startswith("fan-out at")
    left = clients.sqs.receive_message(QueueUrl=policy_only["QUEUE"], MaxNumberOfMessages=10)
    assert left.get("Messages", []) == []


def record(body: str, message_id: str) -> dict[str, Any]:
    """An SQS record with this body."""
    return sqs_record(
        {"MessageId": message_id, "ReceiptHandle": "r", "Body": body, "MD5OfBody": "-"}
    )


def test_bad_messages_are_reported_failed_logged_and_never_ticked(
    clients: Clients, policy_only: dict[str, str]
) -> None:
    """A batch of messages no worker can tick: each is reported (so the redrive policy moves it
    to the dead-letter queue), each logged with why, and nothing is ticked or recorded."""
    env = {k: v for k, v in policy_only.items() if k != "QUEUE"}
    good = ShardMessage(tick=TICK, shard=0, shards=1, groups=["processor-0"])
    bodies = {
        "not-json": "hello",
        "other-kind": json.dumps({"kind": "something-else"}),
        "stale": good.body(),
        "unknown-group": good.model_copy(update={"groups": ["nobody"]}).body(),
    }
    event = {"Records": [record(body, name) for name, body in bodies.items()]}
    with capture_logs() as logs:
        answer = run_worker(
            event, Context(), clients=clients, environ=env, now=TICK + timedelta(minutes=5)
        )
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == list(bodies)
    bad = [e for e in logs if e["event"] == "bad_shard_message"]
    assert [e["message_id"] for e in bad] == list(bodies)
    assert all(e["log_level"] == "error" for e in bad)
    store = DynamoStateStore(clients.dynamodb, TABLE)
    assert [store.audit(g) for g in GROUPS] == [[]] * len(GROUPS)


@pytest.mark.parametrize("event", [{}, {"Records": "x"}, {"Records": [{"body": "{}"}]}])
def test_an_event_that_is_not_from_the_shard_queue_is_refused(
    clients: Clients, policy_only: dict[str, str], event: dict[str, Any]
) -> None:
    """The worker invoked by hand or by another source: bad input, said plainly."""
    with pytest.raises(InputError, match="event source mapping"):
        run_worker(event, Context(), clients=clients, environ=policy_only)
