"""The default state store: one SQLite file; every write is one BEGIN IMMEDIATE transaction.

Opened by `scaler.control.store.open_store`. The file is checked (`PRAGMA quick_check`) when
opened: a damaged page SQLite would not notice on its own must never let a tick act on
half-read history.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from scaler.control.audit import AuditRecord
from scaler.control.history import GroupHistory, Observation
from scaler.control.store.base import (
    LAST_READ_RETENTION,
    OBSERVATION_RETENTION,
    Lease,
    LeaseLostError,
    LeaseMixin,
    StateStoreError,
    StoreDamagedError,
    from_time_key,
    new_lease_token,
    time_key,
)
from scaler.errors import InputError

__all__ = ["SqliteStateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    grp TEXT NOT NULL, at TEXT NOT NULL, proposal INTEGER, complete INTEGER NOT NULL,
    PRIMARY KEY (grp, at));
CREATE TABLE IF NOT EXISTS actions (
    grp TEXT PRIMARY KEY, at TEXT NOT NULL, target INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, tick_id TEXT NOT NULL,
    phase TEXT NOT NULL, at TEXT NOT NULL, record TEXT NOT NULL,
    UNIQUE (grp, tick_id, phase));
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (grp, at);
CREATE TABLE IF NOT EXISTS last_reads (
    grp TEXT PRIMARY KEY, at TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    grp TEXT PRIMARY KEY, owner TEXT NOT NULL, token TEXT NOT NULL, expires TEXT NOT NULL,
    renewed TEXT NOT NULL);
"""
_LEASE_COLUMNS = {"grp", "owner", "token", "expires", "renewed"}
# Keys a statement binds at most (SQLite's limit is 999 in older builds).
_KEYS_A_STATEMENT = 500
# SQLite's own words for "another process holds the lock": transient, worth the next tick.
_BUSY = ("locked", "busy")


def _damaged(path: Path, why: str) -> StoreDamagedError:
    return StoreDamagedError(
        f"state file {path} is damaged ({why}); scaler will not act on it. Move it aside "
        f"(mv {path} {path}.damaged), then `scaler state init` makes a new one; the old audit "
        f"log can be salvaged with `sqlite3 {path}.damaged .recover`"
    )


@contextmanager
def _state_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) or any(w in text for w in _BUSY):
            raise StateStoreError(f"state file {path}: {text}") from exc
        raise _damaged(path, text) from exc


class SqliteStateStore(LeaseMixin):
    """State in one SQLite file; safe for overlapping processes (cron runs) on one host."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: every transaction below is an explicit BEGIN IMMEDIATE ... COMMIT.
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise InputError(
                f"cannot open state file {self.path}: {exc}; set state.path in the policy "
                "or SCALER_STATE to a writable path"
            ) from exc
        self._lock = threading.Lock()
        with _state_errors(self.path):
            self._check_integrity()
            self._db.executescript(_SCHEMA)
            self._upgrade_leases()

    def _check_integrity(self) -> None:
        rows = self._db.execute("PRAGMA quick_check").fetchall()
        problems = [str(r[0]) for r in rows if r[0] != "ok"]
        if problems:
            raise _damaged(self.path, "; ".join(problems[:3]))

    def _upgrade_leases(self) -> None:
        """A file from before fenced leases: leases are transient, so the table is remade."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(leases)")}
        if columns != _LEASE_COLUMNS:
            self._db.executescript("DROP TABLE leases;" + _SCHEMA)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads; SQLite failures become StateStoreError."""
        with self._lock, _state_errors(self.path):
            yield self._db

    @contextmanager
    def _write(self, fence: Lease | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction that takes the file's write lock up front (no upgrade deadlock).

        With `fence`, the transaction first checks that lease still holds its group.
        """
        with self._lock, _state_errors(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if fence is not None:
                    self._check_fence(fence)
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _check_fence(self, fence: Lease) -> None:
        row = self._db.execute(
            "SELECT owner, token FROM leases WHERE grp = ?", (fence.group,)
        ).fetchone()
        if row is None or tuple(row) != (fence.owner, fence.token):
            holder = "nobody" if row is None else f"{row[0]}"
            raise LeaseLostError(
                f"group {fence.group}: this tick's lease was lost (now held by {holder}); "
                "nothing written"
            )

    def history(self, group: str, *, since: datetime) -> GroupHistory:
        """Observations at or after `since`, the newest one before it, and the last action."""
        start = time_key(since)
        with self._read():
            rows = self._db.execute(
                "SELECT at, proposal, complete FROM observations WHERE grp = ? AND at >= ? "
                "UNION ALL SELECT * FROM (SELECT at, proposal, complete FROM observations "
                "WHERE grp = ? AND at < ? ORDER BY at DESC LIMIT 1) ORDER BY at",
                (group, start, group, start),
            ).fetchall()
            action = self._db.execute(
                "SELECT at, target FROM actions WHERE grp = ?", (group,)
            ).fetchone()
        observations = tuple(
            Observation(at=from_time_key(at), proposal=proposal, data_complete=bool(complete))
            for at, proposal, complete in rows
        )
        return GroupHistory(
            group=group,
            observations=observations,
            last_action_at=from_time_key(action[0]) if action else None,
            last_target=action[1] if action else None,
        )

    def record_observation(self, group: str, observation: Observation) -> None:
        """Remember one tick's proposal (a re-run of the same tick replaces it)."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO observations VALUES (?, ?, ?, ?)",
                (
                    group,
                    time_key(observation.at),
                    observation.proposal,
                    int(observation.data_complete),
                ),
            )
            db.execute(
                "DELETE FROM observations WHERE grp = ? AND at < ?",
                (group, time_key(observation.at - OBSERVATION_RETENTION)),
            )

    def record_action(
        self, group: str, *, at: datetime, target: int, fence: Lease | None = None
    ) -> None:
        """Remember an action that did, or may have, changed the group (never moves back)."""
        with self._write(fence) as db:
            db.execute(
                "INSERT INTO actions VALUES (?, ?, ?) ON CONFLICT (grp) DO UPDATE "
                "SET at = excluded.at, target = excluded.target WHERE excluded.at >= actions.at",
                (group, time_key(at), target),
            )

    def append_audit(self, record: AuditRecord, *, fence: Lease | None = None) -> bool:
        """Append a record; False (and nothing written) if its (tick, group, phase) exists."""
        with self._write(fence) as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO audit (grp, tick_id, phase, at, record) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    record.group,
                    record.tick_id,
                    record.phase,
                    time_key(record.at),
                    record.model_dump_json(),
                ),
            )
            return cursor.rowcount == 1

    def audit(
        self,
        group: str,
        *,
        since: datetime | None = None,
        tick_id: str | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """A group's audit records oldest first; `limit` keeps the newest that many."""
        sql = "SELECT record FROM audit WHERE grp = ?"
        params: list[str | int] = [group]
        if since is not None:
            sql += " AND at >= ?"
            params.append(time_key(since))
        if tick_id is not None:
            sql += " AND tick_id = ?"
            params.append(tick_id)
        sql += " ORDER BY at DESC, seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._read():
            rows = self._db.execute(sql, params).fetchall()
        return [AuditRecord.model_validate_json(row[0]) for row in reversed(rows)]

    def open_intents(self, group: str) -> list[AuditRecord]:
        """Intents with no outcome yet: a tick that died between its AWS call and its record."""
        with self._read():
            rows = self._db.execute(
                "SELECT i.record FROM audit i WHERE i.grp = ? AND i.phase = 'intent' "
                "AND NOT EXISTS (SELECT 1 FROM audit o WHERE o.grp = i.grp "
                "AND o.tick_id = i.tick_id AND o.phase = 'outcome') ORDER BY i.at, i.seq",
                (group,),
            ).fetchall()
        return [AuditRecord.model_validate_json(row[0]) for row in rows]

    def acquire_lease(
        self, group: str, owner: str, *, now: datetime, ttl: timedelta
    ) -> Lease | None:
        """Take the group's lease until now+ttl (its owner renews, same token); None if taken."""
        with self._write() as db:
            row = db.execute(
                "SELECT owner, token, expires FROM leases WHERE grp = ?", (group,)
            ).fetchone()
            live = row is not None and row[2] > time_key(now)
            if live and row[0] != owner:
                return None
            token = row[1] if live and row[0] == owner else new_lease_token()
            lease = Lease(group=group, owner=owner, token=token, expires=now + ttl, renewed=now)
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
                (group, owner, token, time_key(lease.expires), time_key(now)),
            )
            return lease

    def renew_lease(self, lease: Lease, *, now: datetime, ttl: timedelta) -> Lease | None:
        """Extend a held lease to now+ttl; None if it was lost."""
        renewed = lease.model_copy(update={"expires": now + ttl, "renewed": now})
        with self._write() as db:
            cursor = db.execute(
                "UPDATE leases SET expires = ?, renewed = ? WHERE grp = ? AND owner = ? "
                "AND token = ?",
                (time_key(renewed.expires), time_key(now), lease.group, lease.owner, lease.token),
            )
            return renewed if cursor.rowcount == 1 else None

    def read_lease(self, group: str) -> Lease | None:
        """The group's lease as stored (held or expired), or None."""
        with self._read():
            row = self._db.execute(
                "SELECT owner, token, expires, renewed FROM leases WHERE grp = ?", (group,)
            ).fetchone()
        if row is None:
            return None
        return Lease(
            group=group,
            owner=row[0],
            token=row[1],
            expires=from_time_key(row[2]),
            renewed=from_time_key(row[3]),
        )

    def release_lease(self, group: str, owner: str) -> None:
        """Give the lease back if `owner` still holds it."""
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE grp = ? AND owner = ?", (group, owner))

    def read_last_reads(self, keys: Sequence[str]) -> dict[str, str]:
        """The last full read kept for each of `keys` that has one, as written."""
        found: dict[str, str] = {}
        with self._read():
            for i in range(0, len(keys), _KEYS_A_STATEMENT):
                chunk = list(keys[i : i + _KEYS_A_STATEMENT])
                marks = ", ".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT grp, record FROM last_reads WHERE grp IN ({marks})",
                    chunk,
                ).fetchall()
                found.update(dict(rows))
        return found

    def write_last_reads(self, reads: Mapping[str, str], *, at: datetime) -> None:
        """Keep each key's last full read (replacing the one before), in one transaction."""
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO last_reads VALUES (?, ?, ?)",
                [(key, time_key(at), text) for key, text in reads.items()],
            )
            db.execute("DELETE FROM last_reads WHERE at < ?", (time_key(at - LAST_READ_RETENTION),))

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
