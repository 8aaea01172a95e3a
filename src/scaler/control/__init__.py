"""Apply mode below the tick: safety rails, the actuator, state between ticks, the audit log."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The package's names load on first use: `scaler.policy` needs only `control.settings`, and a
# backtest must not pay for boto3 and the apply path it never runs (`from scaler.control import
# X` still works; PEP 562).
if TYPE_CHECKING:
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

_HOMES: dict[str, str] = {
    "ActionResult": "scaler.control.actuator",
    "Actuator": "scaler.control.actuator",
    "AuditRecord": "scaler.control.audit",
    "AwsCall": "scaler.control.audit",
    "DEFAULT_LEASE_TTL": "scaler.control.leases",
    "DynamoStateStore": "scaler.control.store",
    "GroupHistory": "scaler.control.history",
    "HeldLease": "scaler.control.leases",
    "KILL_SWITCH_ENV": "scaler.control.rails",
    "Lease": "scaler.control.store",
    "LeaseLostError": "scaler.control.store",
    "NEW_VERSION": "scaler.control.type_rails",
    "Observation": "scaler.control.history",
    "Rail": "scaler.control.rails",
    "RailDecision": "scaler.control.rails",
    "RailSettings": "scaler.control.rails",
    "RecordingActuator": "scaler.control.actuator",
    "STATE_ENV": "scaler.control.store",
    "SqliteStateStore": "scaler.control.store",
    "StateStore": "scaler.control.store",
    "StateStoreError": "scaler.control.store",
    "StoreDamagedError": "scaler.control.store",
    "TypeChangeDecision": "scaler.control.type_rails",
    "TypeChangeResult": "scaler.control.type_actuator",
    "TypeChanger": "scaler.control.type_actuator",
    "apply_rails": "scaler.control.rails",
    "create_table": "scaler.control.store",
    "create_version_call": "scaler.control.type_rails",
    "dangling_intents": "scaler.control.audit",
    "decide_capacity": "scaler.control.decide",
    "default_state_path": "scaler.control.store",
    "hold_lease": "scaler.control.leases",
    "kill_switch_from_env": "scaler.control.rails",
    "make_tick_id": "scaler.control.audit",
    "open_store": "scaler.control.store",
    "plan_type_change": "scaler.control.type_rails",
    "record_outcome": "scaler.control.actuator",
    "set_desired_capacity_call": "scaler.control.actuator",
    "start_refresh_call": "scaler.control.type_rails",
    "type_change_tick_id": "scaler.control.type_rails",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
