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
from scaler.control.type_change import (
    NEW_VERSION,
    TypeChangeDecision,
    create_version_call,
    plan_type_change,
    start_refresh_call,
    type_change_tick_id,
)
from scaler.control.type_changer import TypeChanger, TypeChangeResult

__all__ = [
    "KILL_SWITCH_ENV",
    "NEW_VERSION",
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
    "TypeChangeDecision",
    "TypeChangeResult",
    "TypeChanger",
    "apply_rails",
    "classify_aws_error",
    "create_table",
    "create_version_call",
    "dangling_intents",
    "default_state_path",
    "kill_switch_from_env",
    "make_tick_id",
    "open_store",
    "outcome_unknown",
    "plan_type_change",
    "set_desired_capacity_call",
    "start_refresh_call",
    "type_change_tick_id",
]
