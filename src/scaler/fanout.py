"""Fan-out: a policy's groups split into shards, each ticked by its own Lambda invocation.

Called by `scaler.lambda_handler`: its scheduler (`handler`) plans the shards and sends one
message per shard to the shard queue; its worker (`worker`) reads a message back and ticks the
groups it names. Nothing here decides capacity or reads metrics; it only says which groups go
together, carries the tick's time to the workers, and checks what a worker receives.

A group's shard is a hash of its Auto Scaling group's name (the key its lease, cooldown and
audit are kept under) modulo the shard count: the same group lands in the same shard every
minute while the count stays, and two policy groups naming one Auto Scaling group share a shard,
so they never race each other for its lease.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from scaler.aws import DEFAULT_RETRY, RetryPolicy, call_aws
from scaler.errors import AwsCallError, InputError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from scaler.policy import Policy

__all__ = [
    "DEFAULT_GROUPS_PER_WORKER",
    "GROUPS_PER_WORKER_ENV",
    "MAX_MESSAGE_BYTES",
    "SHARD_QUEUE_ENV",
    "BadShardMessageError",
    "FanOutSettings",
    "ShardMessage",
    "fan_out_settings",
    "parse_shard_message",
    "plan_shards",
    "send_shard",
    "shard_count",
    "shard_of",
]

#: The shard queue's URL: set on the scheduler function, it may fan out; unset, it never does.
SHARD_QUEUE_ENV = "SCALER_SHARD_QUEUE"
#: How many groups one invocation ticks; a policy with more is split into ceil(n / this) shards.
GROUPS_PER_WORKER_ENV = "SCALER_GROUPS_PER_WORKER"
#: A group a tick changes costs it 24 calls one after another in apply mode (measured on the
#: local AWS: 18 to DynamoDB for its lease, history, audit and release; its re-read, 5 more;
#: SetDesiredCapacity), 21 in a dry-run, and a calm group 11. At tens of milliseconds a call in
#: a region that is up to half a second a group: 100 groups fit the 100 s an invocation has
#: before its margin even when every one of them changes in the same minute.
DEFAULT_GROUPS_PER_WORKER = 100
#: SQS's limit on a message body.
MAX_MESSAGE_BYTES = 256 * 1024


class BadShardMessageError(InputError):
    """A shard message a worker cannot tick: retrying the same message will not help."""


class FanOutSettings(BaseModel):
    """Where shards go and how big they are, as the scheduler function's environment says."""

    model_config = ConfigDict(frozen=True)

    queue_url: str | None = Field(description="The shard queue; None: every tick runs inline.")
    groups_per_worker: int = Field(DEFAULT_GROUPS_PER_WORKER, ge=1)


def fan_out_settings(environ: Mapping[str, str]) -> FanOutSettings:
    """The settings from the function's environment; a bad value is an InputError naming it."""
    raw = environ.get(GROUPS_PER_WORKER_ENV, "").strip()
    per_worker = DEFAULT_GROUPS_PER_WORKER
    if raw:
        try:
            per_worker = int(raw)
        except ValueError:
            per_worker = 0
        if per_worker < 1:
            raise InputError(
                f"{GROUPS_PER_WORKER_ENV}={raw!r}: not a whole number of groups; "
                f"set it to 1 or more (default {DEFAULT_GROUPS_PER_WORKER})"
            )
    queue = environ.get(SHARD_QUEUE_ENV, "").strip() or None
    return FanOutSettings(queue_url=queue, groups_per_worker=per_worker)


def shard_count(groups: int, groups_per_worker: int) -> int:
    """How many shards `groups` groups need: 1 (tick inline) up to `groups_per_worker` groups."""
    return max(1, math.ceil(groups / groups_per_worker))


def shard_of(key: str, shards: int) -> int:
    """The shard of a group keyed `key`: the same in every process and Python version
    (a fixed digest, never Python's salted `hash`)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


class ShardMessage(BaseModel):
    """One shard of one tick: what the scheduler sends and a worker ticks.

    `tick` is the scheduler's time, so every worker judges the same minute and every shard's
    actions share the minute's tick id (a redelivered message is then a duplicate the audit log
    already has). `groups` are the policy's group names.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["scaler-shard"] = "scaler-shard"
    version: Literal[1] = 1
    tick: AwareDatetime
    shard: int = Field(ge=0)
    shards: int = Field(ge=1)
    groups: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ShardMessage:
        if self.shard >= self.shards:
            raise ValueError(f"shard {self.shard} of {self.shards}: shards count from 0")
        if len(set(self.groups)) != len(self.groups):
            raise ValueError("a group is named twice")
        return self

    def body(self) -> str:
        """The message body: compact JSON."""
        return self.model_dump_json()


def plan_shards(policy: Policy, *, tick: datetime, groups_per_worker: int) -> list[ShardMessage]:
    """The shard messages for `policy`'s groups at `tick`: one per non-empty shard, each within
    SQS's size limit (an InputError names the fix otherwise)."""
    shards = shard_count(len(policy.groups), groups_per_worker)
    by_shard: list[list[str]] = [[] for _ in range(shards)]
    for group in policy.groups:
        by_shard[shard_of(group.state_key, shards)].append(group.name)
    messages = [
        ShardMessage(tick=tick, shard=index, shards=shards, groups=names)
        for index, names in enumerate(by_shard)
        if names
    ]
    for message in messages:
        if len(message.body().encode()) > MAX_MESSAGE_BYTES:
            raise InputError(
                f"shard {message.shard} names {len(message.groups)} groups, more than one SQS "
                f"message holds: lower {GROUPS_PER_WORKER_ENV} (now {groups_per_worker})"
            )
    return messages


def parse_shard_message(
    body: str, policy: Policy, *, now: datetime, max_age: timedelta
) -> ShardMessage:
    """The message a worker received, checked against its policy and the time now.

    Raises BadShardMessageError when the body is not a shard message, names a group the policy
    lacks or one that belongs to another shard, or its tick is older than `max_age` (a newer
    tick of the same groups has been sent since: ticking an old minute after it would judge
    the groups on older data than a decision already made).
    """
    try:
        message = ShardMessage.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise BadShardMessageError(f"not a shard message: {detail}") from exc
    known = {g.name: g for g in policy.groups}
    unknown = [name for name in message.groups if name not in known]
    if unknown:
        raise BadShardMessageError(
            f"shard {message.shard}: group(s) {', '.join(map(repr, unknown[:3]))} not in the "
            "policy (was the scheduler deployed with another policy?)"
        )
    strays = [
        name
        for name in message.groups
        if shard_of(known[name].state_key, message.shards) != message.shard
    ]
    if strays:
        raise BadShardMessageError(
            f"shard {message.shard} of {message.shards}: group(s) "
            f"{', '.join(map(repr, strays[:3]))} belong to another shard"
        )
    age = now - message.tick
    if age > max_age:
        raise BadShardMessageError(
            f"shard {message.shard}: tick {message.tick:%Y-%m-%dT%H:%M:%SZ} is "
            f"{int(age.total_seconds())}s old (at most {int(max_age.total_seconds())}s): "
            "a newer tick of these groups has been sent since"
        )
    return message


def send_shard(
    sqs: SQSClient, queue_url: str, message: ShardMessage, *, retry: RetryPolicy = DEFAULT_RETRY
) -> str:
    """Send one shard's message; its MessageId, or AwsCallError once retries run out."""
    answer = call_aws(
        "SendMessage",
        message.groups,
        sqs.send_message,
        retry=retry,
        expect="MessageId",
        QueueUrl=queue_url,
        MessageBody=message.body(),
    )
    message_id = answer["MessageId"]
    if not message_id:
        raise AwsCallError(f"SendMessage for shard {message.shard}: no MessageId in the answer")
    return message_id
