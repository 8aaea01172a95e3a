"""One capacity decision for one group and tick: remember the proposal, read the history back,
let the rails decide. The controller (live, under the group's lease) and the simulator
(scaler in the closed loop, in simulated time) both decide through here, so the loop the
simulator measures is the one that runs.
"""

from __future__ import annotations

from datetime import datetime

from scaler.control.history import Observation
from scaler.control.rails import RailDecision, apply_rails
from scaler.control.settings import RailSettings
from scaler.control.store import StateStore
from scaler.models import GroupState

__all__ = ["decide_capacity"]


def decide_capacity(
    store: StateStore,
    key: str,
    proposal: int | None,
    state: GroupState,
    rails: RailSettings,
    *,
    now: datetime,
    data_complete: bool,
    kill_switch_env: bool,
    policy_min: int | None,
    policy_max: int | None,
) -> RailDecision:
    """Record this tick's proposal for `key`, then the rails' decision on `state`."""
    store.record_observation(
        key, Observation(at=now, proposal=proposal, data_complete=data_complete)
    )
    history = store.history(key, since=now - rails.stabilization_window)
    return apply_rails(
        proposal,
        state,
        history,
        rails,
        now=now,
        data_complete=data_complete,
        kill_switch_env=kill_switch_env,
        policy_min=policy_min,
        policy_max=policy_max,
    )
