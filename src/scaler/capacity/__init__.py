"""Desired capacity from the backlog: settings, the per-minute rails, and the plan.

`plan_capacity` (in `plan.py`) is what the engine calls; see its module for the formula.
"""

from scaler.capacity.plan import (
    CapacityDecision,
    CapacityPlan,
    capacity_reason,
    plan_capacity,
    required_instances,
)
from scaler.capacity.rails import balance_falling
from scaler.capacity.settings import Basis, CapacitySettings, Hold, Sizing

__all__ = [
    "Basis",
    "CapacityDecision",
    "CapacityPlan",
    "CapacitySettings",
    "Hold",
    "Sizing",
    "balance_falling",
    "capacity_reason",
    "plan_capacity",
    "required_instances",
]
