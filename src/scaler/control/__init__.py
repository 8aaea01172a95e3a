"""Apply mode below the tick: safety rails, the actuator, state between ticks, the audit log."""

from __future__ import annotations

from scaler.control.actuator import (
    ActionResult,
    Actuator,
    RecordingActuator,
    record_outcome,
    set_desired_capacity_call,
)
from scaler.control.audit import AuditRecord, AwsCall, dangling_intents, make_tick_id
from scaler.control.decide import decide_capacity
from scaler.control.history import GroupHistory, Observation
from scaler.control.leases import DEFAULT_LEASE_TTL, HeldLease, hold_lease
from scaler.control.rails import (
    KILL_SWITCH_ENV,
    Rail,
    RailDecision,
    RailSettings,
    apply_rails,
    kill_switch_from_env,
)
from scaler.control.store import (
    STATE_ENV,
    DynamoStateStore,
    Lease,
    LeaseLostError,
    SqliteStateStore,
    StateStore,
    StateStoreError,
    StoreDamagedError,
    create_table,
    default_state_path,
    open_store,
)
from scaler.control.type_actuator import TypeChanger, TypeChangeResult
from scaler.control.type_rails import (
    NEW_VERSION,
    TypeChangeDecision,
    create_version_call,
    plan_type_change,
    start_refresh_call,
    type_change_tick_id,
)

__all__ = [
    "DEFAULT_LEASE_TTL",
    "KILL_SWITCH_ENV",
    "NEW_VERSION",
    "STATE_ENV",
    "ActionResult",
    "Actuator",
    "AuditRecord",
    "AwsCall",
    "DynamoStateStore",
    "GroupHistory",
    "HeldLease",
    "Lease",
    "LeaseLostError",
    "Observation",
    "Rail",
    "RailDecision",
    "RailSettings",
    "RecordingActuator",
    "SqliteStateStore",
    "StateStore",
    "StateStoreError",
    "StoreDamagedError",
    "TypeChangeDecision",
    "TypeChangeResult",
    "TypeChanger",
    "apply_rails",
    "create_table",
    "create_version_call",
    "dangling_intents",
    "decide_capacity",
    "default_state_path",
    "hold_lease",
    "kill_switch_from_env",
    "make_tick_id",
    "open_store",
    "plan_type_change",
    "record_outcome",
    "set_desired_capacity_call",
    "start_refresh_call",
    "type_change_tick_id",
]
