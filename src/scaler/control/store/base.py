"""What every state store is: the protocol, the lease value and its fencing, and time keys.

Called by the controller (leases, observations, history), the actuators (audit records, the
cooldown), the live tick's cost gate (each group's last full read, as text:
`scaler.live.StoredMemory`) and `scaler history`; implemented by `sqlite.py` and `dynamodb.py`.

A lease is fenced: each acquisition gets a fresh token, and the writes that matter (an
intent, an outcome, an action) may be made conditional on it. A holder that lost its lease
(it stalled past its TTL and another tick took the group) can then neither act nor record:
its fenced write raises `LeaseLostError` and nothing is written.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from pydantic import AwareDatetime, BaseModel, ConfigDict

from scaler.control.audit import AuditRecord
from scaler.control.history import GroupHistory, Observation
from scaler.errors import InputError, ScalerError

__all__ = [
    "LAST_READ_RETENTION",
    "OBSERVATION_RETENTION",
    "Lease",
    "LeaseLostError",
    "LeaseMixin",
    "StateStore",
    "StateStoreError",
    "StoreDamagedError",
    "from_time_key",
    "new_lease_token",
    "time_key",
]

# Observations are only read back for the stabilization window; a day covers any sane window.
OBSERVATION_RETENTION = timedelta(days=1)
# A last full read is due again after live.full_read_every_minutes (at most 60): one older than
# this is never used, so the store lets it go.
LAST_READ_RETENTION = timedelta(hours=2)


class StateStoreError(ScalerError):
    """The state store could not read or write (a locked file, a throttled table): transient."""


class StoreDamagedError(InputError):
    """The store failed its integrity check: scaler will not act on it until it is repaired.

    Bad input (exit 2), not a transient failure: it will not fix itself.
    """


class LeaseLostError(StateStoreError):
    """A fenced write found the group's lease held by another tick: nothing was written."""


class Lease(BaseModel):
    """A group's lease as one holder took it: `token` fences that holder's writes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str
    owner: str
    token: str
    expires: AwareDatetime
    renewed: AwareDatetime


def new_lease_token() -> str:
    """A token no other acquisition of any group has: fencing compares it, nothing orders it."""
    return uuid.uuid4().hex


def time_key(when: datetime) -> str:
    """UTC time as fixed-width text, so text order is time order (microseconds kept)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_time_key(text: str) -> datetime:
    """The datetime a `time_key` wrote."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@runtime_checkable
class StateStore(Protocol):
    """Per-group history, the audit log and a lease, shared by every tick of one deployment."""

    def history(self, group: str, *, since: datetime) -> GroupHistory:
        """Observations at or after `since`, the newest one before it, and the last action."""
        ...

    def record_observation(self, group: str, observation: Observation) -> None:
        """Remember one tick's proposal (a re-run of the same tick replaces it)."""
        ...

    def record_action(
        self, group: str, *, at: datetime, target: int, fence: Lease | None = None
    ) -> None:
        """Remember an action that did, or may have, changed the group (starts the cooldown).

        With `fence`, only while that lease still holds the group; else LeaseLostError.
        """
        ...

    def append_audit(self, record: AuditRecord, *, fence: Lease | None = None) -> bool:
        """Append a record; False (and nothing written) if its (tick, group, phase) exists.

        With `fence`, only while that lease still holds the group; else LeaseLostError.
        """
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

    def acquire_lease(
        self, group: str, owner: str, *, now: datetime, ttl: timedelta
    ) -> Lease | None:
        """Take the group's lease until now+ttl (an owner's own lease is renewed, same token);
        None while another owner holds it."""
        ...

    def renew_lease(self, lease: Lease, *, now: datetime, ttl: timedelta) -> Lease | None:
        """Extend a held lease to now+ttl; None if it was lost (expired and taken, or released)."""
        ...

    def read_lease(self, group: str) -> Lease | None:
        """The group's lease as stored (held or expired), or None: for saying who holds it."""
        ...

    def release_lease(self, group: str, owner: str) -> None:
        """Give the lease back if `owner` still holds it."""
        ...

    def lease(
        self, group: str, owner: str, *, now: datetime, ttl: timedelta
    ) -> contextlib.AbstractContextManager[Lease | None]:
        """Hold the group's lease for a block; yields None (and holds nothing) if taken."""
        ...

    def read_last_reads(self, keys: Sequence[str]) -> dict[str, str]:
        """The last full read kept for each of `keys` that has one, as written."""
        ...

    def write_last_reads(self, reads: Mapping[str, str], *, at: datetime) -> None:
        """Keep each key's last full read (replacing the one before), read at `at`."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class LeaseMixin:
    """`lease()` as a context manager, built on a store's acquire_lease/release_lease."""

    def acquire_lease(
        self, group: str, owner: str, *, now: datetime, ttl: timedelta
    ) -> Lease | None:
        raise NotImplementedError

    def release_lease(self, group: str, owner: str) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def lease(
        self, group: str, owner: str, *, now: datetime, ttl: timedelta
    ) -> Iterator[Lease | None]:
        """Hold the group's lease for a block; yields None (and holds nothing) if taken."""
        held = self.acquire_lease(group, owner, now=now, ttl=ttl)
        try:
            yield held
        finally:
            if held is not None:
                self.release_lease(group, owner)
