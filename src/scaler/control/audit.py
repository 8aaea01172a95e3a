"""Audit records of every decision: the intent before an AWS call, the outcome after it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from scaler.models import EvidenceValue, format_time
from scaler.signals import floor_minute

__all__ = [
    "Action",
    "AuditRecord",
    "AwsCall",
    "Mode",
    "Phase",
    "RecordedOutcome",
    "Result",
    "dangling_intents",
    "make_tick_id",
]

Action = Literal["capacity", "instance_type"]
Mode = Literal["dry-run", "apply"]
Phase = Literal["intent", "outcome"]
# applied: AWS accepted the call. dry-run: the call was only recorded. held: a rail stopped it.
# unchanged: the group already had the target. failed: AWS refused it, so nothing changed.
# unknown: no answer (a timeout), so it may have happened. interrupted: an intent found with no
# outcome, written by the tick that found it.
Result = Literal["applied", "dry-run", "held", "unchanged", "failed", "unknown", "interrupted"]

# JSON-like, so nested requests (StartInstanceRefresh's Preferences) are recorded exactly.
CallParam = JsonValue


class AwsCall(BaseModel):
    """One AWS API call exactly as made (or as it would be made in dry-run)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str
    operation: str
    params: dict[str, CallParam]


class AuditRecord(BaseModel):
    """One entry of the audit log: a decision's evidence, rails, call and (for outcomes) result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tick_id: str
    group: str
    at: AwareDatetime
    mode: Mode
    phase: Phase
    proposal: int | None = None
    current: int | None = None
    target: int | None = None
    evidence: dict[str, EvidenceValue] = Field(default_factory=dict)
    rails: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    call: AwsCall | None = None
    result: Result | None = None
    error: str | None = None
    retryable: bool | None = None
    # Optional with defaults, so records written before type changes existed still read.
    action: Action = "capacity"
    calls: list[AwsCall] = Field(
        default_factory=list, description="The calls of a multi-call action (a type change)."
    )
    current_type: str | None = None
    target_type: str | None = None
    created: dict[str, str] = Field(
        default_factory=dict,
        description="What AWS created: launch_template_version, instance_refresh_id.",
    )

    def summary(self) -> str:
        """One line for `scaler history`: time, tick, mode, phase, result, change, call, rails."""
        if self.action == "instance_type":
            change = f"type {self.current_type}->{self.target_type}"
        elif self.target is not None:
            change = f"{self.current}->{self.target}"
        else:
            change = f"{self.current} (proposal {self.proposal})"
        parts = [
            format_time(self.at),
            self.group,
            self.tick_id,
            self.mode,
            self.phase if self.result is None else f"{self.phase}:{self.result}",
            change,
        ]
        made = [self.call] if self.call is not None else []
        for call in [*made, *self.calls]:
            args = ", ".join(f"{k}={_shown(v)}" for k, v in call.params.items())
            parts.append(f"{call.operation}({args})")
        if self.created:
            parts.append(", ".join(f"{k}={v}" for k, v in self.created.items()))
        if self.rails:
            parts.append("held by " + ", ".join(self.rails))
        if self.error:
            parts.append(f"error: {self.error}")
        return "  ".join(parts)


def _shown(value: CallParam) -> str:
    """Scalars as they are (as before), nested values as compact JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class RecordedOutcome(BaseModel):
    """What one act() did: its outcome record, and any interrupted earlier intents it closed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: AuditRecord
    duplicate: bool = Field(False, description="This (tick, group, action) was already decided.")
    recorded: bool = Field(True, description="False when the state store refused the outcome.")
    interrupted: list[AuditRecord] = Field(default_factory=list)

    @property
    def result(self) -> Result:
        """applied, dry-run, held, unchanged, failed, unknown or interrupted."""
        assert self.outcome.result is not None
        return self.outcome.result


def make_tick_id(now: datetime, prefix: str = "tick") -> str:
    """A tick id from the minute `now` falls in, so a re-run of the same tick has the same id."""
    return f"{prefix}-{format_time(floor_minute(now))}"


def dangling_intents(records: Iterable[AuditRecord]) -> list[AuditRecord]:
    """Intents with no outcome for the same (tick, group): a crash between call and record."""
    records = list(records)
    closed = {(r.tick_id, r.group) for r in records if r.phase == "outcome"}
    return [r for r in records if r.phase == "intent" and (r.tick_id, r.group) not in closed]
