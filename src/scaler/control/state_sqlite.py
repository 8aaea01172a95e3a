"""The default state store: one SQLite file; the lease is taken inside a BEGIN IMMEDIATE."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scaler.control.audit import AuditRecord
from scaler.control.history import GroupHistory, Observation
from scaler.control.state import OBSERVATION_RETENTION, STATE_ENV, LeaseMixin, StateStoreError
from scaler.errors import InputError

__all__ = ["SqliteStateStore", "time_key"]

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
CREATE TABLE IF NOT EXISTS leases (
    grp TEXT PRIMARY KEY, owner TEXT NOT NULL, expires TEXT NOT NULL);
"""


def time_key(when: datetime) -> str:
    """UTC time as fixed-width text, so text order is time order (microseconds kept)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextmanager
def _state_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StateStoreError(f"state file {path}: {exc}") from exc


def _from_key(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class SqliteStateStore(LeaseMixin):
    """State in one SQLite file; safe for overlapping processes (cron runs) on one host."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: every transaction below is an explicit BEGIN IMMEDIATE ... COMMIT.
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(
                f"cannot open state file {self.path}: {exc}; set state.path in the policy "
                f"or {STATE_ENV}"
            ) from exc
        self._lock = threading.Lock()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads; SQLite failures become StateStoreError."""
        with self._lock, _state_errors(self.path):
            yield self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that takes the file's write lock up front (no upgrade deadlock)."""
        with self._lock, _state_errors(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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
            Observation(at=_from_key(at), proposal=proposal, data_complete=bool(complete))
            for at, proposal, complete in rows
        )
        return GroupHistory(
            group=group,
            observations=observations,
            last_action_at=_from_key(action[0]) if action else None,
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

    def record_action(self, group: str, *, at: datetime, target: int) -> None:
        """Remember an action that did, or may have, changed the group (never moves back)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO actions VALUES (?, ?, ?) ON CONFLICT (grp) DO UPDATE "
                "SET at = excluded.at, target = excluded.target WHERE excluded.at >= actions.at",
                (group, time_key(at), target),
            )

    def append_audit(self, record: AuditRecord) -> bool:
        """Append a record; False (and nothing written) if its (tick, group, phase) exists."""
        with self._write() as db:
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

    def acquire_lease(self, group: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the group's lease until now+ttl; False while another owner holds it."""
        with self._write() as db:
            row = db.execute("SELECT owner, expires FROM leases WHERE grp = ?", (group,)).fetchone()
            if row is not None and row[0] != owner and row[1] > time_key(now):
                return False
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                (group, owner, time_key(now + ttl)),
            )
            return True

    def release_lease(self, group: str, owner: str) -> None:
        """Give the lease back if `owner` still holds it."""
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE grp = ? AND owner = ?", (group, owner))

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
