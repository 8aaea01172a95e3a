"""Frozen outcome types: Finding, Unevaluated, Recommendation, Advice (the SIGNALS.md JSON)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

__all__ = [
    "Advice",
    "Alternative",
    "EvidenceValue",
    "Finding",
    "GroupError",
    "GroupState",
    "Place",
    "Recommendation",
    "Severity",
    "Strategy",
    "Timestamp",
    "Unevaluated",
    "advice_line",
    "format_time",
    "group_key",
]


def format_time(when: datetime) -> str:
    """ISO 8601 in UTC with a trailing Z, as SIGNALS.md writes times."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[datetime, PlainSerializer(format_time, return_type=str)]
EvidenceValue = float | int | str | bool | None | list[float] | list[str] | dict[str, Any]


class Strategy(StrEnum):
    """What kind of change an alternative is."""

    SAME_TYPE = "same_type"
    LOCAL_NVME = "local_nvme"
    SUSTAINED_EBS = "sustained_ebs"
    CHEAPEST_EBS = "cheapest_ebs"
    GP3_THROUGHPUT = "gp3_throughput"
    COMPUTE_OPTIMIZED = "compute_optimized"
    MEMORY_OPTIMIZED = "memory_optimized"
    OTHER_FAMILY = "other_family"


class Alternative(BaseModel):
    """One way to serve the load, with its arithmetic and what it takes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_type: str
    strategy: Strategy
    vcpus: int
    instances_needed: int
    per_instance_msgs_per_min: float
    limit: str = Field(description="The resource that sets per_instance_msgs_per_min.")
    sustained_mb_s: float = Field(description="EBS MB/s one instance sustains (no burst).")
    price_per_hour: float | None
    fleet_cost_per_hour: float | None
    cost_per_1000_messages: float | None
    change: str
    price_note: str = Field(description="Where the price comes from, or that it is missing.")
    assumptions: list[str] = Field(default_factory=list)


class Severity(StrEnum):
    """How urgently a person should look."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Finding(_Frozen):
    """A named state the fleet was in, from `start` to `end` (None: still holds)."""

    kind: str
    group: str
    start: Timestamp
    end: Timestamp | None
    severity: Severity
    summary: str
    evidence: dict[str, EvidenceValue] = Field(default_factory=dict)


class Unevaluated(_Frozen):
    """A rule that could not judge a group, and the signals it lacked (never a guess)."""

    kind: str
    group: str
    missing: list[str]
    reason: str


class Recommendation(_Frozen):
    """What the group should run at `at`; a None field means no opinion on it.

    `desired_capacity` is always the size on the type the group runs now; `instance_type`
    proposes a different type and `instance_type_capacity` is the size needed on it.
    """

    at: Timestamp
    group: str
    desired_capacity: int | None
    instance_type: str | None
    reason: str
    instance_type_capacity: int | None = Field(
        None, description="Instances needed on `instance_type` (the alternatives table's row)."
    )
    instance_type_change: str | None = Field(
        None,
        description="What must change besides the type for it to help, e.g. 'the hot I/O "
        "moved to local NVMe'; None when the type alone does.",
    )
    summary: str = Field("", description="The advice in one line (advice_line).")
    current_capacity: int | None = None
    evidence: dict[str, EvidenceValue] = Field(default_factory=dict)
    alternatives: list[Alternative] = Field(
        default_factory=list, description="Ranked instance-type options, best first."
    )


def advice_line(rec: Recommendation, current_type: str | None) -> str:
    """The one-line form of a recommendation, the same in every output (text, JSON, pager).

    "20 × m5.xlarge now (from 8); or 5 × m5d.xlarge (needs the hot I/O moved to local NVMe)":
    the count on the current type first (and what it needs when max_size holds it), then the
    proposed type with its own count.
    """
    parts = []
    if rec.desired_capacity is not None:
        on = f"× {current_type}" if current_type else "instances"
        head = f"{rec.desired_capacity} {on} now"
        notes = []
        if rec.current_capacity is not None:
            same = rec.current_capacity == rec.desired_capacity
            notes.append("no change" if same else f"from {rec.current_capacity}")
        needs = rec.evidence.get("raw_desired")
        if rec.evidence.get("held_by") == "max_size" and isinstance(needs, int):
            # A capped count beside an uncapped one would hide that the group is too small.
            notes.append(f"held at max_size; the load needs {needs}")
        if notes:
            head += f" ({'; '.join(notes)})"
        parts.append(head)
    if rec.instance_type:
        alt = (
            f"{rec.instance_type_capacity} × {rec.instance_type}"
            if rec.instance_type_capacity is not None
            else f"{rec.instance_type} (count unknown: no demand measured)"
        )
        if rec.instance_type_change:
            alt += f" (needs {rec.instance_type_change})"
        parts.append(f"or {alt}" if parts else alt)
    if parts:
        return "; ".join(parts)
    action = rec.evidence.get("action")
    if isinstance(action, str):
        return f"{action.replace('_', ' ')} (a mitigation, not a fix); no capacity change"
    return "no capacity opinion"


class GroupError(_Frozen):
    """A group that could not be evaluated at all, and why."""

    group: str
    error: str
    retryable: bool = False


def group_key(name: str, *, account: str | None = None, region: str | None = None) -> str:
    """THE key of an Auto Scaling group in state, leases, audit and output.

    The group's name alone when the policy names no account and no region (the keys scaler
    always used, so existing state carries on); else `account/region/name` with the parts the
    policy names, e.g. `123456789012/eu-west-1/workers`: one name in two accounts or regions is
    two groups.
    """
    return "/".join(part for part in (account, region, name) if part)


class Place(_Frozen):
    """Where a group lives: its account and region (None: those of scaler's own credentials)."""

    account: str | None = None
    region: str | None = None

    def __str__(self) -> str:
        where = [f"account {self.account}"] if self.account else []
        where += [f"region {self.region}"] if self.region else []
        return ", ".join(where) or "scaler's own account and region"


class GroupState(_Frozen):
    """An Auto Scaling group as AWS reports it now."""

    name: str
    account: str | None = Field(None, description="The account the policy names for the group.")
    region: str | None = Field(None, description="The region the policy names for the group.")
    desired: int
    min_size: int
    max_size: int
    in_service: int
    instance_type: str | None = None
    launch_template: dict[str, str] | None = None
    mixed_instances: bool = False  # launch_template then comes from a MixedInstancesPolicy
    activities_in_progress: int = 0
    instance_refresh_in_progress: bool = False
    activity_checked: bool = Field(
        True,
        description="False when activities and refreshes were not read: rails then hold actions.",
    )

    @property
    def key(self) -> str:
        """The group's key in state, leases and audit (`group_key`)."""
        return group_key(self.name, account=self.account, region=self.region)

    def placed(self, place: Place) -> GroupState:
        """This state, marked with the account and region it was read in."""
        if place.account == self.account and place.region == self.region:
            return self
        return self.model_copy(update={"account": place.account, "region": place.region})


class Advice(_Frozen):
    """Everything one run concluded; `findings` and `recommendations` are the contract."""

    findings: list[Finding] = Field(default_factory=list)
    recommendations: list[Recommendation] = Field(default_factory=list)
    unevaluated: list[Unevaluated] = Field(default_factory=list)
    errors: list[GroupError] = Field(default_factory=list)

    @classmethod
    def merge(cls, parts: Iterable[Advice]) -> Advice:
        """One Advice holding every part's items, in order."""
        parts = list(parts)
        return cls(
            findings=[f for p in parts for f in p.findings],
            recommendations=[r for p in parts for r in p.recommendations],
            unevaluated=[u for p in parts for u in p.unevaluated],
            errors=[e for p in parts for e in p.errors],
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object `--format json` prints."""
        return self.model_dump(mode="json")


# Literal kept for readers: the finding kinds SIGNALS.md defines today.
KnownKind = Literal[
    "iowait_bound",
    "cpu_bound",
    "backlog_growing",
    "memory_leak",
    "memory_pressure",
    "latency_growth",
    "ebs_burst_exhaustion",
]
