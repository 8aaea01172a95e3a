"""Policy settings of apply mode: the safety rails and where state is kept (defaults documented)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["RailSettings", "StateSettings", "TypeChangeSettings"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RailSettings(_Strict):
    """Safety rails around every capacity change; each one is named in output when it holds."""

    max_step_count: int = Field(
        4, ge=1, description="Most instances added or removed in one tick (default 4)."
    )
    max_step_percent: float = Field(
        50.0,
        gt=0,
        description=(
            "Most change in one tick as a percent of the current desired capacity, rounded up and "
            "never below 1 instance (default 50)."
        ),
    )
    step_select: Literal["min", "max"] = Field(
        "min",
        description=(
            "How the count and percent limits combine, like HPA's selectPolicy: 'min' allows the "
            "smaller step (default, safer), 'max' the larger."
        ),
    )
    cooldown_seconds: int = Field(
        300, ge=0, description="No action for this long after an applied action (default 300)."
    )
    honor_cooldown: bool = Field(
        False,
        description="Pass HonorCooldown=true to SetDesiredCapacity (the ASG's own cooldown).",
    )
    scale_in_stabilization_minutes: int = Field(
        5,
        ge=0,
        description=(
            "Scale in only to the highest proposal seen in this many minutes, and only after "
            "watching the group that long (default 5)."
        ),
    )
    max_observation_gap_seconds: int = Field(
        600,
        ge=1,
        description=(
            "A gap longer than this between ticks inside the stabilization window counts as "
            "missing data and holds scale-in (default 600; keep above twice the tick interval)."
        ),
    )
    kill_switch: bool = Field(
        False,
        description="Turn apply into dry-run for this group (SCALER_KILL_SWITCH does it for all).",
    )

    @property
    def stabilization_window(self) -> timedelta:
        """The scale-in stabilization window as a duration."""
        return timedelta(minutes=self.scale_in_stabilization_minutes)


class StateSettings(_Strict):
    """Where ticks keep state between runs; SCALER_STATE overrides both fields."""

    path: str | None = Field(
        None,
        description=(
            "SQLite file for state (default $XDG_STATE_HOME/scaler/state.db, else "
            "~/.local/state/scaler/state.db)."
        ),
    )
    dynamodb_table: str | None = Field(
        None, description="DynamoDB table for state (for Lambda) instead of a SQLite file."
    )

    @model_validator(mode="after")
    def _one_backend(self) -> StateSettings:
        if self.path is not None and self.dynamodb_table is not None:
            raise ValueError("give state.path or state.dynamodb_table, not both")
        return self


class TypeChangeSettings(_Strict):
    """How apply mode changes a group's instance type: a launch template version + refresh."""

    apply: bool = Field(
        False,
        description=(
            "Apply instance type changes in apply mode (default false: they are only recorded, as "
            "in dry-run). Opt-in because a type alone rarely fixes an I/O bottleneck: an m5d type "
            "only helps once the hot I/O moves to its local NVMe disk, an application change."
        ),
    )
    min_healthy_percentage: int = Field(
        90,
        ge=0,
        le=100,
        description=(
            "Instance refresh MinHealthyPercentage: share of desired capacity kept in service "
            "while instances are replaced (default 90)."
        ),
    )
    instance_warmup_seconds: int = Field(
        300,
        ge=0,
        description="Instance refresh InstanceWarmup: seconds a new instance warms up (300).",
    )
    checkpoint_percentages: list[int] = Field(
        default_factory=lambda: [25, 50, 100],
        description=(
            "Instance refresh CheckpointPercentages: pause after replacing this share of the "
            "group; strictly increasing, the last one 100 (default [25, 50, 100])."
        ),
    )
    checkpoint_delay_seconds: int = Field(
        600,
        ge=0,
        le=172800,
        description="Instance refresh CheckpointDelay: how long each checkpoint pauses (600).",
    )
    auto_rollback: bool = Field(
        True,
        description="Instance refresh AutoRollback: undo the change if the refresh fails (true).",
    )
    skip_matching: bool = Field(
        True,
        description="Instance refresh SkipMatching: keep instances already of the new type (true).",
    )
    allow_single_instance: bool = Field(
        False,
        description=(
            "Refresh a group of one instance (default false): that replaces its only instance, "
            "an outage while the new one starts."
        ),
    )

    @field_validator("checkpoint_percentages")
    @classmethod
    def _checkpoints(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("checkpoint_percentages needs at least one value, the last 100")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"checkpoint_percentages {value} must be strictly increasing")
        if value[0] < 1 or value[-1] != 100:
            raise ValueError(f"checkpoint_percentages {value} must lie in 1..100 and end at 100")
        return value
