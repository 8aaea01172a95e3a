"""What capacity sizing is told (CapacitySettings) and the names it answers with.

`Basis` (which limit set the per-instance capacity), `Sizing` (throughput or concurrency) and
`Hold` (what held the advice away from the plan). Read by `scaler.capacity.plan` and
`scaler.capacity.rails`, and by policies.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BASES", "Basis", "CapacitySettings", "Hold", "Sizing"]


class Basis(StrEnum):
    """Which limit set the per-instance capacity."""

    MEASURED = "measured"
    EBS_BYTES = "ebs_bytes"
    EBS_IOPS = "ebs_iops"
    CPU = "cpu"
    POLICY = "policy"


BASES = list(Basis)


class Sizing(StrEnum):
    """How the instance count was decided: messages per minute, or messages held at once."""

    THROUGHPUT = "throughput"
    CONCURRENCY = "concurrency"


class Hold(StrEnum):
    """What held the advised number away from the planned one (`held_by`)."""

    TOLERANCE = "tolerance"
    SCALE_IN_STABILIZATION = "scale_in_stabilization"
    MIN_SIZE = "min_size"
    MAX_SIZE = "max_size"
    BURST_BALANCE = "burst_balance_falling"
    DEPENDENCY = "dependency_bound"


class CapacitySettings(BaseModel):
    """How to size a group from its backlog; every field has a documented default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    drain_minutes: float = Field(30.0, gt=0, description="Drain the current backlog within this.")
    target_utilization: float = Field(
        0.9, gt=0, le=1, description="Fraction of sustained per-instance capacity to plan for."
    )
    tolerance: float = Field(
        0.10,
        ge=0,
        lt=1,
        description="No change while need/current (before rounding up) is within 1 +/- this.",
    )
    sizing: Literal["throughput", "concurrency", "auto"] = Field(
        "auto",
        description="throughput: messages/min; concurrency: (visible + in flight) / "
        "messages_per_instance; auto: concurrency while an instance completes fewer than "
        "concurrency_below_per_minute messages a minute (long jobs), else throughput.",
    )
    messages_per_instance: float | None = Field(
        None,
        gt=0,
        description="Messages one instance works on at once (concurrency sizing); default: "
        "measured as queue_in_flight / instances while a backlog stands.",
    )
    concurrency_below_per_minute: float = Field(
        1.0,
        gt=0,
        description="auto sizing: below this many completions per instance per minute, "
        "throughput is too coarse to size on, so concurrency decides.",
    )
    scale_in_stabilization_minutes: int = Field(
        5, ge=1, description="A lower capacity must be advised this long before scale-in."
    )
    measure_minutes: int = Field(5, ge=1, description="Average rates over this many minutes.")
    timeline_pace_minutes: int = Field(
        5, ge=1, description="A backtest repeats advice moving the same way at most this often."
    )
    per_instance_capacity: float | None = Field(
        None, gt=0, description="Messages/min one instance sustains, if known from load tests."
    )
    cpu_ceiling_pct: float = Field(
        85.0, gt=0, le=100, description="CPU user % an instance can run at before it saturates."
    )
    saturation_backlog_minutes: float = Field(
        1.0, gt=0, description="Backlog above this many minutes of throughput = fleet is busy."
    )
    stale_minutes: int = Field(
        3, ge=0, description="Carry a missing datapoint forward at most this long."
    )
    dependency_step_pct: float = Field(
        25.0,
        gt=0,
        description="While a rule finds the fleet waiting on a dependency (dependency_bound), "
        "scale out by at most this percent of the current size per step (at least 1).",
    )
    balance_falling_minutes: int = Field(
        10,
        ge=1,
        description="An EBS burst balance lower than this many minutes ago is falling: no "
        "scale-in then.",
    )
