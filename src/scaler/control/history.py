"""What a group's past ticks left behind: proposals seen (for stabilization) and the last action."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["GroupHistory", "Observation"]


class Observation(BaseModel):
    """One tick's proposal for a group; None or incomplete data never reads as idle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    proposal: int | None = Field(ge=0)
    data_complete: bool


class GroupHistory(BaseModel):
    """A group's recent observations (oldest first) and its last applied action."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str
    observations: tuple[Observation, ...] = ()
    last_action_at: AwareDatetime | None = None
    last_target: int | None = None

    def since(self, start: datetime) -> tuple[Observation, ...]:
        """Observations at or after `start`, oldest first."""
        return tuple(o for o in self.observations if o.at >= start)

    def latest_before(self, start: datetime) -> Observation | None:
        """The newest observation strictly before `start`, if any."""
        earlier = [o for o in self.observations if o.at < start]
        return max(earlier, key=lambda o: o.at) if earlier else None
