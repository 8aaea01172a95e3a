"""State kept between ticks, behind one interface: SQLite by default, DynamoDB for Lambda."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import structlog

from scaler.control.audit import AuditRecord
from scaler.control.history import GroupHistory, Observation
from scaler.control_settings import StateSettings
from scaler.errors import InputError, ScalerError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = structlog.get_logger(__name__)

__all__ = [
    "DYNAMODB_SCHEME",
    "OBSERVATION_RETENTION",
    "STATE_ENV",
    "LeaseMixin",
    "StateStore",
    "StateStoreError",
    "default_state_path",
    "open_store",
    "record_outcome",
]

STATE_ENV = "SCALER_STATE"
DYNAMODB_SCHEME = "dynamodb://"
# Observations are only read back for the stabilization window; a day covers any sane window.
OBSERVATION_RETENTION = timedelta(days=1)


class StateStoreError(ScalerError):
    """The state store could not read or write (a locked or broken file); worth a retry."""


@runtime_checkable
class StateStore(Protocol):
    """Per-group history, the audit log and a lease, shared by every tick of one deployment."""

    def history(self, group: str, *, since: datetime) -> GroupHistory:
        """Observations at or after `since`, the newest one before it, and the last action."""
        ...

    def record_observation(self, group: str, observation: Observation) -> None:
        """Remember one tick's proposal (a re-run of the same tick replaces it)."""
        ...

    def record_action(self, group: str, *, at: datetime, target: int) -> None:
        """Remember an action that did, or may have, changed the group (starts the cooldown)."""
        ...

    def append_audit(self, record: AuditRecord) -> bool:
        """Append a record; False (and nothing written) if its (tick, group, phase) exists."""
        ...

    def audit(
        self,
        group: str,
        *,
        since: datetime | None = None,
        tick_id: str | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """A group's audit records oldest first; `limit` keeps the newest that many."""
        ...

    def open_intents(self, group: str) -> list[AuditRecord]:
        """Intents with no outcome yet: a tick that died between its AWS call and its record."""
        ...

    def acquire_lease(self, group: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the group's lease until now+ttl; False while another owner holds it."""
        ...

    def release_lease(self, group: str, owner: str) -> None:
        """Give the lease back if `owner` still holds it."""
        ...

    def lease(
        self, group: str, owner: str, *, now: datetime, ttl: timedelta
    ) -> contextlib.AbstractContextManager[bool]:
        """Hold the group's lease for a block; yields False (and holds nothing) if taken."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class LeaseMixin:
    """`lease()` as a context manager, built on a store's acquire_lease/release_lease."""

    def acquire_lease(self, group: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        raise NotImplementedError

    def release_lease(self, group: str, owner: str) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def lease(self, group: str, owner: str, *, now: datetime, ttl: timedelta) -> Iterator[bool]:
        """Hold the group's lease for a block; yields False (and holds nothing) if taken."""
        held = self.acquire_lease(group, owner, now=now, ttl=ttl)
        try:
            yield held
        finally:
            if held:
                self.release_lease(group, owner)


def record_outcome(
    store: StateStore, final: AuditRecord, *, action_target: int | None
) -> tuple[AuditRecord, bool]:
    """Write an outcome after an AWS call: the action (if one started) then the record.

    `action_target` is the desired capacity an action that ran, or may have run, left the group
    at (it starts the cooldown); None when nothing started. If the store fails now, the outcome
    says so and the intent stays open for the next tick to find. Returns (outcome, recorded).
    """
    try:
        if action_target is not None:
            store.record_action(final.group, at=final.at, target=action_target)
        return final, store.append_audit(final)
    except ScalerError as exc:
        log.error("outcome_not_recorded", group=final.group, tick=final.tick_id, error=str(exc))
        note = f"outcome not recorded ({exc}); the next tick will find the open intent"
        return final.model_copy(update={"notes": [*final.notes, note]}), False


def default_state_path(environ: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME/scaler/state.db, else ~/.local/state/scaler/state.db."""
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "scaler" / "state.db"


def open_store(
    settings: StateSettings,
    *,
    environ: Mapping[str, str] | None = None,
    dynamodb: DynamoDBClient | None = None,
) -> StateStore:
    """The store a policy asks for; SCALER_STATE (a path or dynamodb://TABLE) overrides it."""
    from scaler.control.state_dynamo import DynamoStateStore
    from scaler.control.state_sqlite import SqliteStateStore

    env = os.environ if environ is None else environ
    override = env.get(STATE_ENV, "").strip()
    table = settings.dynamodb_table
    path: str | None = settings.path
    if override.startswith(DYNAMODB_SCHEME):
        table, path = override.removeprefix(DYNAMODB_SCHEME), None
        if not table:
            raise InputError(f"{STATE_ENV}={override!r} names no table; use dynamodb://TABLE")
    elif override:
        table, path = None, override
    if table is not None:
        if dynamodb is None:
            raise InputError(f"state table {table!r} needs AWS credentials for DynamoDB")
        return DynamoStateStore(dynamodb, table)
    return SqliteStateStore(Path(path).expanduser() if path else default_state_path(env))
