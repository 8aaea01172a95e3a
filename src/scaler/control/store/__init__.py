"""State kept between ticks, behind one interface: SQLite by default, DynamoDB for Lambda.

`open_store` is the factory the command line and the Lambda handlers call; the protocol, the
lease and time keys are in `base`, one module per backend beside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from scaler.aws import DEFAULT_RETRY, RetryPolicy
from scaler.control.settings import StateSettings
from scaler.control.store.base import (
    LAST_READ_RETENTION,
    OBSERVATION_RETENTION,
    Lease,
    LeaseLostError,
    LeaseMixin,
    StateStore,
    StateStoreError,
    StoreDamagedError,
    from_time_key,
    time_key,
)
from scaler.control.store.dynamodb import DynamoStateStore, create_table
from scaler.control.store.sqlite import SqliteStateStore
from scaler.errors import InputError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "DYNAMODB_SCHEME",
    "LAST_READ_RETENTION",
    "OBSERVATION_RETENTION",
    "STATE_ENV",
    "DynamoStateStore",
    "Lease",
    "LeaseLostError",
    "LeaseMixin",
    "SqliteStateStore",
    "StateStore",
    "StateStoreError",
    "StoreDamagedError",
    "create_table",
    "default_state_path",
    "from_time_key",
    "open_store",
    "state_location",
    "time_key",
]

STATE_ENV = "SCALER_STATE"
DYNAMODB_SCHEME = "dynamodb://"


def default_state_path(environ: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME/scaler/state.db, else ~/.local/state/scaler/state.db."""
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "scaler" / "state.db"


def state_location(
    settings: StateSettings, environ: Mapping[str, str] | None = None
) -> tuple[str | None, Path | None]:
    """(DynamoDB table, None) or (None, SQLite path): the policy's, unless SCALER_STATE says."""
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
        return table, None
    return None, Path(path).expanduser() if path else default_state_path(env)


def open_store(
    settings: StateSettings,
    *,
    environ: Mapping[str, str] | None = None,
    dynamodb: DynamoDBClient | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> StateStore:
    """The store a policy asks for; SCALER_STATE (a path or dynamodb://TABLE) overrides it."""
    table, path = state_location(settings, environ)
    if table is not None:
        if dynamodb is None:
            raise InputError(f"state table {table!r} needs AWS credentials for DynamoDB")
        return DynamoStateStore(dynamodb, table, retry=retry)
    assert path is not None
    return SqliteStateStore(path)
