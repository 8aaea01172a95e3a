"""State in one DynamoDB table (for Lambda); the lease is a conditional write that expires.

Opened by `scaler.control.store.open_store`. Every call goes through `_call`: retried within
the tick's budget when AWS throttles or fails transiently (a throttle must not fail the
group), sorted by `scaler.aws` otherwise, and a missing table named with how to create it.
Fenced writes are transactions with a ConditionCheck on the lease item.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from scaler.aws import (
    AWS_CALL_ERRORS,
    DEFAULT_RETRY,
    RetryPolicy,
    classify_aws_error,
    error_code,
    read_answer,
    retrying,
)
from scaler.control.audit import AuditRecord
from scaler.control.history import GroupHistory, Observation
from scaler.control.store.base import (
    LAST_READ_RETENTION,
    OBSERVATION_RETENTION,
    Lease,
    LeaseLostError,
    LeaseMixin,
    from_time_key,
    new_lease_token,
    time_key,
)
from scaler.errors import InputError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["DynamoStateStore", "create_table"]

_T = TypeVar("_T")
Item = dict[str, Any]
# Every item: pk names the kind and group, sk orders within it.
_OBS, _ACTION, _AUDIT, _TICK, _OPEN, _LEASE, _READ = (
    "obs#",
    "action#",
    "audit#",
    "tick#",
    "open#",
    "lease#",
    "read#",
)
_TTL_ATTRIBUTE = "expires_at"
# DynamoDB's batch sizes: keys a BatchGetItem, puts a BatchWriteItem.
_GET_BATCH, _WRITE_BATCH = 100, 25
# Rounds for the keys or items a batch call hands back unprocessed (throttled partitions);
# what is still left after them is a full read next tick, never a wrong one.
_BATCH_ROUNDS = 4


def create_table(client: DynamoDBClient, table: str) -> None:
    """Create the state table (pk/sk strings, on-demand, TTL on expires_at); no-op if it exists."""
    try:
        client.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise classify_aws_error(exc, operation="CreateTable") from exc
        return
    except AWS_CALL_ERRORS as exc:
        raise classify_aws_error(exc, operation="CreateTable") from exc
    client.get_waiter("table_exists").wait(TableName=table)
    client.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": _TTL_ATTRIBUTE},
    )


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | float) -> dict[str, str]:
    return {"N": str(value)}


def _failed_condition(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or (
            "ConditionalCheckFailed" in str(exc.response.get("Error", {}).get("Message", ""))
        )
    return False


class _ConditionFailedError(Exception):
    """A conditional write's condition did not hold (not an error: the caller decides)."""


class DynamoStateStore(LeaseMixin):
    """State in a DynamoDB table made by `create_table`; safe for concurrent Lambda invocations."""

    def __init__(
        self, client: DynamoDBClient, table: str, *, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        self._client = client
        self.table = table
        self._retry = retry

    def _call(self, operation: str, call: Callable[[], _T]) -> _T:
        """One DynamoDB call, retried when worth it (a failed condition: _ConditionFailedError)."""
        try:
            answer: _T = retrying(self._retry, f"dynamodb:{operation}", self.table)(
                read_answer, call
            )
            return answer
        except ClientError as exc:
            if _failed_condition(exc):
                raise _ConditionFailedError from exc
            if error_code(exc) == "ResourceNotFoundException":
                raise InputError(
                    f"state table {self.table!r} does not exist in this account and region; "
                    "create it with `scaler state init` (or deploy infra/lambda/template.yaml)"
                ) from exc
            raise classify_aws_error(exc, operation=operation) from exc
        except AWS_CALL_ERRORS as exc:
            raise classify_aws_error(exc, operation=operation) from exc

    def _write(self, operation: str, call: Callable[[], object]) -> bool:
        """A conditional write: True when written, False when its condition failed."""
        try:
            self._call(operation, call)
        except _ConditionFailedError:
            return False
        return True

    def _fenced(self, items: list[Any], fence: Lease | None) -> list[Any]:
        """`items` with, under `fence`, a check that the fence's lease still holds the group."""
        if fence is None:
            return items
        check = {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": {"pk": _s(_LEASE + fence.group), "sk": _s("lease")},
                "ConditionExpression": "#owner = :owner AND #token = :token",
                "ExpressionAttributeNames": {"#owner": "owner", "#token": "token"},
                "ExpressionAttributeValues": {
                    ":owner": _s(fence.owner),
                    ":token": _s(fence.token),
                },
            }
        }
        return [check, *items]

    def _transact(self, items: list[Any], fence: Lease | None) -> bool:
        """One transaction; False when a condition failed, LeaseLostError when the fence did."""
        # One token for every attempt: a retry of a transaction that did commit is a no-op.
        token = new_lease_token()
        written = self._write(
            "TransactWriteItems",
            lambda: self._client.transact_write_items(
                TransactItems=self._fenced(items, fence), ClientRequestToken=token
            ),
        )
        if not written and fence is not None and not self._holds(fence):
            raise LeaseLostError(
                f"group {fence.group}: this tick's lease was lost; nothing written"
            )
        return written

    def _holds(self, fence: Lease) -> bool:
        lease = self.read_lease(fence.group)
        return lease is not None and (lease.owner, lease.token) == (fence.owner, fence.token)

    def _query(self, **kwargs: Any) -> Iterator[Item]:
        """Every item a Query returns, page by page; `Limit` caps the total."""
        limit = kwargs.get("Limit")
        seen = 0
        while True:
            page = self._call("Query", lambda: self._client.query(TableName=self.table, **kwargs))
            if "Items" not in page:
                raise classify_aws_error(
                    ResponseParserError("the Query answer has no Items: unreadable"),
                    operation="Query",
                )
            for item in page.get("Items", []):
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def history(self, group: str, *, since: datetime) -> GroupHistory:
        """Observations at or after `since`, the newest one before it, and the last action."""
        pk = _s(_OBS + group)
        start = time_key(since)
        recent = list(
            self._query(
                KeyConditionExpression="pk = :pk AND sk >= :start",
                ExpressionAttributeValues={":pk": pk, ":start": _s(start)},
            )
        )
        before = list(
            self._query(
                KeyConditionExpression="pk = :pk AND sk < :start",
                ExpressionAttributeValues={":pk": pk, ":start": _s(start)},
                ScanIndexForward=False,
                Limit=1,
            )
        )
        observations = tuple(
            Observation(
                at=from_time_key(item["sk"]["S"]),
                proposal=int(item["proposal"]["N"]) if "N" in item["proposal"] else None,
                data_complete=item["complete"]["BOOL"],
            )
            for item in before + recent
        )
        action = self._call(
            "GetItem",
            lambda: self._client.get_item(
                TableName=self.table,
                Key={"pk": _s(_ACTION + group), "sk": _s("last")},
                ConsistentRead=True,
            ),
        ).get("Item")
        return GroupHistory(
            group=group,
            observations=observations,
            last_action_at=(from_time_key(action["at"]["S"]) if action else None),
            last_target=int(action["target"]["N"]) if action else None,
        )

    def record_observation(self, group: str, observation: Observation) -> None:
        """Remember one tick's proposal (a re-run of the same tick replaces it)."""
        expires = observation.at + OBSERVATION_RETENTION
        item: Item = {
            "pk": _s(_OBS + group),
            "sk": _s(time_key(observation.at)),
            "proposal": (
                _n(observation.proposal) if observation.proposal is not None else {"NULL": True}
            ),
            "complete": {"BOOL": observation.data_complete},
            _TTL_ATTRIBUTE: _n(int(expires.timestamp())),
        }
        self._call("PutItem", lambda: self._client.put_item(TableName=self.table, Item=item))

    def record_action(
        self, group: str, *, at: datetime, target: int, fence: Lease | None = None
    ) -> None:
        """Remember an action that did, or may have, changed the group (never moves back)."""
        put: Any = {
            "TableName": self.table,
            "Item": {
                "pk": _s(_ACTION + group),
                "sk": _s("last"),
                "at": _s(time_key(at)),
                "target": _n(target),
            },
            "ConditionExpression": "attribute_not_exists(pk) OR #at <= :at",
            "ExpressionAttributeNames": {"#at": "at"},
            "ExpressionAttributeValues": {":at": _s(time_key(at))},
        }
        # A newer action already recorded wins (the condition fails): nothing to do.
        if fence is not None:
            self._transact([{"Put": put}], fence)
        else:
            self._write("PutItem", lambda: self._client.put_item(**put))

    def append_audit(self, record: AuditRecord, *, fence: Lease | None = None) -> bool:
        """Append a record; False (and nothing written) if its (tick, group, phase) exists."""
        body = _s(record.model_dump_json())
        when = time_key(record.at)
        open_key = {"pk": _s(_OPEN + record.group), "sk": _s(record.tick_id)}
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "pk": _s(_TICK + record.group),
                        "sk": _s(f"{record.tick_id}#{record.phase}"),
                        "at": _s(when),
                        "record": body,
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "pk": _s(_AUDIT + record.group),
                        "sk": _s(f"{when}#{record.tick_id}#{record.phase}"),
                        "record": body,
                    },
                }
            },
        ]
        if record.phase == "intent":
            items.append({"Put": {"TableName": self.table, "Item": {**open_key, "record": body}}})
        else:
            items.append({"Delete": {"TableName": self.table, "Key": open_key}})
        return self._transact(items, fence)

    def audit(
        self,
        group: str,
        *,
        since: datetime | None = None,
        tick_id: str | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """A group's audit records oldest first; `limit` keeps the newest that many."""
        if tick_id is not None:
            items = self._query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :tick)",
                ExpressionAttributeValues={
                    ":pk": _s(_TICK + group),
                    ":tick": _s(f"{tick_id}#"),
                },
                ConsistentRead=True,
            )
            records = [AuditRecord.model_validate_json(i["record"]["S"]) for i in items]
            records = [r for r in records if since is None or r.at >= since]
            records.sort(key=lambda r: (r.at, r.phase != "intent"))
            return records[-limit:] if limit is not None else records
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(_AUDIT + group)},
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        if since is not None:
            query["KeyConditionExpression"] = "pk = :pk AND sk >= :since"
            query["ExpressionAttributeValues"][":since"] = _s(time_key(since))
        if limit is not None:
            query["Limit"] = limit
        newest_first = [
            AuditRecord.model_validate_json(i["record"]["S"]) for i in self._query(**query)
        ]
        return list(reversed(newest_first))

    def open_intents(self, group: str) -> list[AuditRecord]:
        """Intents with no outcome yet: a tick that died between its AWS call and its record."""
        items = self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(_OPEN + group)},
            ConsistentRead=True,
        )
        records = [AuditRecord.model_validate_json(i["record"]["S"]) for i in items]
        return sorted(records, key=lambda r: r.at)

    def acquire_lease(
        self, group: str, owner: str, *, now: datetime, ttl: timedelta
    ) -> Lease | None:
        """Take the group's lease until now+ttl (its owner renews, same token); None if taken."""
        held = self.read_lease(group)
        mine = held is not None and held.owner == owner and held.expires > now
        token = held.token if mine and held is not None else new_lease_token()
        lease = Lease(group=group, owner=owner, token=token, expires=now + ttl, renewed=now)
        written = self._write(
            "PutItem",
            lambda: self._client.put_item(
                TableName=self.table,
                Item=self._lease_item(lease),
                ConditionExpression=(
                    "attribute_not_exists(pk) OR #owner = :owner OR #expires <= :now"
                ),
                ExpressionAttributeNames={"#owner": "owner", "#expires": "expires"},
                ExpressionAttributeValues={":owner": _s(owner), ":now": _s(time_key(now))},
            ),
        )
        return lease if written else None

    def renew_lease(self, lease: Lease, *, now: datetime, ttl: timedelta) -> Lease | None:
        """Extend a held lease to now+ttl; None if it was lost."""
        renewed = lease.model_copy(update={"expires": now + ttl, "renewed": now})
        written = self._write(
            "PutItem",
            lambda: self._client.put_item(
                TableName=self.table,
                Item=self._lease_item(renewed),
                ConditionExpression="#owner = :owner AND #token = :token",
                ExpressionAttributeNames={"#owner": "owner", "#token": "token"},
                ExpressionAttributeValues={":owner": _s(lease.owner), ":token": _s(lease.token)},
            ),
        )
        return renewed if written else None

    def read_lease(self, group: str) -> Lease | None:
        """The group's lease as stored (held or expired), or None."""
        item = self._call(
            "GetItem",
            lambda: self._client.get_item(
                TableName=self.table,
                Key={"pk": _s(_LEASE + group), "sk": _s("lease")},
                ConsistentRead=True,
            ),
        ).get("Item")
        if item is None or "token" not in item:
            return None  # none, or one from before fenced leases: free to take
        return Lease(
            group=group,
            owner=item["owner"]["S"],
            token=item["token"]["S"],
            expires=from_time_key(item["expires"]["S"]),
            renewed=from_time_key(item["renewed"]["S"]),
        )

    @staticmethod
    def _lease_item(lease: Lease) -> Item:
        return {
            "pk": _s(_LEASE + lease.group),
            "sk": _s("lease"),
            "owner": _s(lease.owner),
            "token": _s(lease.token),
            "expires": _s(time_key(lease.expires)),
            "renewed": _s(time_key(lease.renewed)),
        }

    def release_lease(self, group: str, owner: str) -> None:
        """Give the lease back if `owner` still holds it."""
        self._write(
            "DeleteItem",
            lambda: self._client.delete_item(
                TableName=self.table,
                Key={"pk": _s(_LEASE + group), "sk": _s("lease")},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": _s(owner)},
            ),
        )

    def read_last_reads(self, keys: Sequence[str]) -> dict[str, str]:
        """The last full read kept for each of `keys` that has one (BatchGetItem, 100 a call)."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), _GET_BATCH):
            wanted: Any = {
                self.table: {
                    "Keys": [
                        {"pk": _s(_READ + key), "sk": _s("last")}
                        for key in unique[i : i + _GET_BATCH]
                    ],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(_BATCH_ROUNDS):
                answer = self._call(
                    "BatchGetItem", partial(self._client.batch_get_item, RequestItems=wanted)
                )
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[item["pk"]["S"].removeprefix(_READ)] = item["record"]["S"]
                wanted = answer.get("UnprocessedKeys") or {}
                if not wanted:
                    break
                time.sleep(0.05 * 2**attempt)
        return found

    def write_last_reads(self, reads: Mapping[str, str], *, at: datetime) -> None:
        """Keep each key's last full read (BatchWriteItem, 25 a call), gone by TTL later."""
        expires = _n(int((at + LAST_READ_RETENTION).timestamp()))
        puts: list[Any] = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": _s(_READ + key),
                        "sk": _s("last"),
                        "at": _s(time_key(at)),
                        "record": _s(text),
                        _TTL_ATTRIBUTE: expires,
                    }
                }
            }
            for key, text in reads.items()
        ]
        for i in range(0, len(puts), _WRITE_BATCH):
            pending: Any = {self.table: puts[i : i + _WRITE_BATCH]}
            for attempt in range(_BATCH_ROUNDS):
                answer = self._call(
                    "BatchWriteItem", partial(self._client.batch_write_item, RequestItems=pending)
                )
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(0.05 * 2**attempt)

    def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""
