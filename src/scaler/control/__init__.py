"""Apply mode below the tick: safety rails, the actuator, state between ticks, the audit log."""

from __future__ import annotations

from scaler.control.actuator import ActionResult, Actuator, set_desired_capacity_call
from scaler.control.audit import AuditRecord, AwsCall, dangling_intents, make_tick_id
from scaler.control.calls import classify_aws_error, outcome_unknown
from scaler.control.history import GroupHistory, Observation
from scaler.control.rails import (
    KILL_SWITCH_ENV,
    Rail,
    RailDecision,
    RailSettings,
    apply_rails,
    kill_switch_from_env,
)
from scaler.control.state import (
    STATE_ENV,
    StateStore,
    StateStoreError,
    default_state_path,
    open_store,
)
from scaler.control.state_dynamo import DynamoStateStore, create_table
from scaler.control.state_sqlite import SqliteStateStore

__all__ = [
    "KILL_SWITCH_ENV",
    "STATE_ENV",
    "ActionResult",
    "Actuator",
    "AuditRecord",
    "AwsCall",
    "DynamoStateStore",
    "GroupHistory",
    "Observation",
    "Rail",
    "RailDecision",
    "RailSettings",
    "SqliteStateStore",
    "StateStore",
    "StateStoreError",
    "apply_rails",
    "classify_aws_error",
    "create_table",
    "dangling_intents",
    "default_state_path",
    "kill_switch_from_env",
    "make_tick_id",
    "open_store",
    "outcome_unknown",
    "set_desired_capacity_call",
]
