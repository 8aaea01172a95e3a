"""AWS Lambda entry points: `handler`, one `scaler run` tick per scheduled invocation (or, in
fan-out mode, the tick's shards sent to workers), and `worker`, one shard's tick per message.

Configured by environment, as a function's settings are:
- `SCALER_POLICY`: the policy file in the deployment package (default `policy.yaml`);
- `SCALER_STATE=dynamodb://TABLE` (or `state.dynamodb_table` in the policy): Lambda's disk
  does not outlive the invocation, so SQLite state is refused here;
- `SCALER_APPLY=1` acts within the rails (or `mode: apply` in the policy); without either, and
  with `SCALER_KILL_SWITCH` set, the tick only advises;
- `SCALER_SHARD_QUEUE` (the shard queue's URL) and `SCALER_GROUPS_PER_WORKER` (default 100):
  a policy with more groups than one invocation ticks is split into shards (`scaler.fanout`),
  one message each, and the `worker` function ticks each shard at the scheduler's minute.
  Without the queue, or with few groups, the scheduled invocation ticks every group itself.

Each invocation's request id owns the groups' leases, so overlapping invocations never both act.
The tick stops starting new groups, and writing intents, 20 s before the invocation's deadline,
and every call is bounded, so nothing outlives the invocation. A tick that could not do its job
(including a group whose lease a dead holder left: the fleet runs without its controller)
raises `TickFailedError` after logging its report, so the function's Errors metric (and an
alarm on it) says so until it is recovered.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.config import Config

from scaler.aws import Clients, RetryPolicy, make_clients
from scaler.errors import InputError, ScalerError
from scaler.logs import configure_logging, get_logger

if TYPE_CHECKING:
    from scaler.controller import TickReport
    from scaler.policy import Policy

__all__ = [
    "APPLY_ENV",
    "DEADLINE_MARGIN_MS",
    "POLICY_ENV",
    "SHARD_MAX_AGE",
    "LambdaContext",
    "TickFailedError",
    "handler",
    "run_invocation",
    "run_worker",
    "worker",
]

log = get_logger(__name__)

POLICY_ENV = "SCALER_POLICY"
APPLY_ENV = "SCALER_APPLY"
#: Stop starting groups, and writing intents, this long before the invocation times out. Once
#: an intent is written, what remains is bounded: SetDesiredCapacity (one attempt, at most
#: 2 s to connect + 5 s to read) and the outcome write (retried within 4 s, one attempt at most
#: 7 s): under 20 s. So no call outlives the invocation and no intent is left open.
DEADLINE_MARGIN_MS = 20_000
#: Every call's own bound in Lambda, and the retries' total: see DEADLINE_MARGIN_MS.
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5)
RETRY = RetryPolicy(max_attempts=3, max_total_s=4.0, initial_backoff_s=0.2, max_backoff_s=2.0)
_TRUE = frozenset({"1", "true", "yes", "on"})
#: A worker ticks a shard's minute only this soon after the scheduler sent it: the schedule
#: runs every minute, so an older message's groups have a newer tick on its way, and ticking
#: the old minute after it would judge them on older data than a decision already made.
SHARD_MAX_AGE = timedelta(minutes=1)


class LambdaContext(Protocol):
    """The parts of Lambda's context object a tick uses."""

    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


class TickFailedError(ScalerError):
    """The tick ran but could not do its job for every group (its report says which)."""


def handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The scheduled function's entry point (`scaler.lambda_handler.handler`): a tick, or in
    fan-out mode the shards sent to the workers."""
    configure_logging(os.environ.get("SCALER_LOG_LEVEL", "info"), "json")
    return run_invocation(context, clients=_warm_clients(), environ=os.environ)


@functools.cache
def _warm_clients() -> Clients:
    """Made once per execution environment and reused while it stays warm."""
    return make_clients(config=CLIENT_CONFIG)


def worker(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The fan-out worker's entry point (`scaler.lambda_handler.worker`), fed by the shard
    queue."""
    configure_logging(os.environ.get("SCALER_LOG_LEVEL", "info"), "json")
    return run_worker(event, context, clients=_warm_clients(), environ=os.environ)


def run_invocation(
    context: LambdaContext,
    *,
    clients: Clients,
    environ: Mapping[str, str],
    now: datetime | None = None,
) -> dict[str, Any]:
    """One scheduled invocation: the tick's report as JSON (TickFailedError after logging it
    when the tick could not do its job), or, with a shard queue and more groups than one
    worker ticks, the shards sent to the workers."""
    from scaler.fanout import fan_out_settings, shard_count
    from scaler.policy import load_policy

    policy = load_policy(environ.get(POLICY_ENV, "policy.yaml"))
    fan_out = fan_out_settings(environ)
    now = now or datetime.now(UTC)
    shards = shard_count(len(policy.groups), fan_out.groups_per_worker)
    if fan_out.queue_url is not None and shards > 1:
        return _send_shards(
            policy, context, clients, fan_out.queue_url, fan_out.groups_per_worker, now
        )
    report = _tick(policy, context, clients=clients, environ=environ, now=now)
    result = report.model_dump(mode="json")
    print(json.dumps(result), flush=True)  # the invocation's log keeps the whole report
    if not report.ok:
        raise TickFailedError(f"tick {report.tick_id} could not do its job for: {_failed(report)}")
    return result


def run_worker(
    event: Mapping[str, Any],
    context: LambdaContext,
    *,
    clients: Clients,
    environ: Mapping[str, str],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Tick the shard each SQS record names; the records not done, as `batchItemFailures`.

    A record is not done when its message is bad or stale (BadShardMessageError: logged, and
    never ticked) or its tick could not do its job for a group: either way SQS keeps it, and
    the queue's redrive policy moves it to the dead-letter queue, where its body says which
    groups missed which minute. A bad function setting (the policy, the state table) is an
    InputError raised for the whole batch: the function's Errors metric says so.
    """
    from scaler.fanout import BadShardMessageError, parse_shard_message
    from scaler.policy import load_policy

    records = event.get("Records")
    if not isinstance(records, list) or not all(
        isinstance(r, Mapping) and isinstance(r.get("messageId"), str) for r in records
    ):
        raise InputError(
            "the worker's event has no SQS Records with a messageId: invoke it through the "
            "shard queue's event source mapping"
        )
    policy = load_policy(environ.get(POLICY_ENV, "policy.yaml"))
    failed: list[str] = []
    for record in records:
        message_id = record["messageId"]
        received = now or datetime.now(UTC)
        try:
            message = parse_shard_message(
                str(record.get("body", "")), policy, now=received, max_age=SHARD_MAX_AGE
            )
        except BadShardMessageError as exc:
            log.error("bad_shard_message", message_id=message_id, error=str(exc))
            failed.append(message_id)
            continue
        shard = policy.model_copy(update={"groups": [policy.group(n) for n in message.groups]})
        try:
            report = _tick(shard, context, clients=clients, environ=environ, now=message.tick)
        except InputError:
            raise
        except ScalerError as exc:  # this shard only: the other records still run
            log.error("shard_tick_failed", message_id=message_id, error=str(exc))
            failed.append(message_id)
            continue
        result = {
            "shard": message.shard,
            "shards": message.shards,
            **report.model_dump(mode="json"),
        }
        print(json.dumps(result), flush=True)
        if not report.ok:
            log.error(
                "shard_tick_failed",
                message_id=message_id,
                shard=message.shard,
                tick=report.tick_id,
                groups=_failed(report),
            )
            failed.append(message_id)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _send_shards(
    policy: Policy,
    context: LambdaContext,
    clients: Clients,
    queue_url: str,
    groups_per_worker: int,
    now: datetime,
) -> dict[str, Any]:
    """One message per shard; a shard that could not be sent fails the invocation after the
    others were sent, so one failed send never holds back the rest. No send starts in the
    last 20 s (each is bounded like any call), so the invocation reports rather than times out."""
    from scaler.fanout import plan_shards, send_shard

    messages = plan_shards(policy, tick=now, groups_per_worker=groups_per_worker)
    sent: list[dict[str, Any]] = []
    unsent: list[str] = []
    for message in messages:
        if context.get_remaining_time_in_millis() < DEADLINE_MARGIN_MS:
            unsent.append(f"shard {message.shard} ({len(message.groups)} groups): no time left")
            continue
        try:
            message_id = send_shard(clients.sqs, queue_url, message, retry=RETRY)
        except ScalerError as exc:
            log.error("shard_not_sent", shard=message.shard, error=str(exc))
            unsent.append(f"shard {message.shard} ({len(message.groups)} groups): {exc}")
            continue
        sent.append({"shard": message.shard, "groups": len(message.groups), "message": message_id})
    result = {
        "mode": "fan-out",
        "at": now.isoformat(),
        "shards": messages[0].shards,
        "groups": len(policy.groups),
        "sent": sent,
    }
    print(json.dumps(result), flush=True)
    if unsent:
        raise TickFailedError(f"fan-out at {now:%H:%M} could not send: {'; '.join(unsent)}")
    return result


def _tick(
    policy: Policy,
    context: LambdaContext,
    *,
    clients: Clients,
    environ: Mapping[str, str],
    now: datetime,
) -> TickReport:
    """`policy`'s groups ticked at `now` within the invocation's time, state in DynamoDB."""
    # The tick's code (policy, rules, numpy, the controller) loads on the first invocation, not
    # at import: Lambda's init phase then costs little more than boto3's own import.
    from scaler.control import SqliteStateStore, open_store
    from scaler.controller import run_tick

    store = open_store(policy.state, environ=environ, dynamodb=clients.dynamodb, retry=RETRY)
    if isinstance(store, SqliteStateStore):
        store.close()
        raise InputError(
            "Lambda keeps no disk between invocations: set SCALER_STATE=dynamodb://TABLE "
            "or state.dynamodb_table in the policy"
        )
    stop = threading.Event()
    remaining_s = (context.get_remaining_time_in_millis() - DEADLINE_MARGIN_MS) / 1000
    deadline = threading.Timer(max(remaining_s, 0.0), stop.set)
    deadline.daemon = True
    deadline.start()
    try:
        return run_tick(
            policy,
            clients,
            store,
            now=now,
            apply=environ.get(APPLY_ENV, "").strip().lower() in _TRUE,
            environ=environ,
            owner=f"lambda:{context.aws_request_id}",
            stop=stop,
            retry=RETRY,
        )
    finally:
        deadline.cancel()
        store.close()


def _failed(report: TickReport) -> str:
    """The groups a tick could not do its job for, for a one-line error."""
    return ", ".join(
        [g.group for g in report.groups if not g.ok] + [e.group for e in report.errors]
    )
