"""What the type ranking takes and gives: constraints, the measured demand, alternatives."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from scaler.instances.catalog import InstanceFacts

__all__ = ["Demand", "InstanceConstraints", "State"]

State = Literal["io", "cpu", "memory"]


class InstanceConstraints(BaseModel):
    """Which instance types the advice may propose (a group's policy carries this)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    families: list[str] | None = Field(
        None, description="Allowed families (e.g. [m5, m5d, m6i]); default: any in the catalog."
    )
    architecture: Literal["x86_64", "arm64", "any"] | None = Field(
        None, description="CPU architecture; default: the current type's (images are per arch)."
    )
    max_price_per_hour: float | None = Field(
        None, gt=0, description="Most an instance may cost per hour (USD, on-demand or policy)."
    )
    keep_vcpus: bool = Field(False, description="Only types with the current vCPU count.")
    current_generation_only: bool = Field(False, description="Skip previous-generation types.")

    def describe(self) -> str:
        """The constraints in words, for a reason that says why nothing was proposed."""
        parts = []
        if self.families is not None:
            parts.append(f"families {', '.join(self.families)}")
        if self.architecture is not None:
            parts.append(f"architecture {self.architecture}")
        if self.max_price_per_hour is not None:
            parts.append(f"at most {self.max_price_per_hour:g} USD/hour")
        if self.keep_vcpus:
            parts.append("the current vCPU count")
        if self.current_generation_only:
            parts.append("current generation only")
        return "; ".join(parts) or "any type"

    def allows(self, facts: InstanceFacts, current: InstanceFacts, price: float | None) -> bool:
        """Whether a type passes every constraint (an unpriced type fails a price cap)."""
        arch = self.architecture or current.architecture
        return (
            (self.families is None or facts.family in self.families)
            and arch in ("any", facts.architecture)
            and (not self.keep_vcpus or facts.vcpus == current.vcpus)
            and (not self.current_generation_only or facts.current_generation)
            and (
                self.max_price_per_hour is None
                or (price is not None and price <= self.max_price_per_hour)
            )
        )


class Demand(BaseModel):
    """The load to serve: fleet arrivals and what one message costs, measured per instance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arrivals_per_min: float = Field(gt=0, description="Messages per minute the fleet must serve.")
    msgs_per_min: float = Field(gt=0, description="Measured per-instance throughput.")
    mb_per_message: float = Field(0.0, ge=0, description="EBS MB read + written per message.")
    ios_per_message: float = Field(0.0, ge=0, description="EBS I/O operations per message.")
    cpu_seconds_per_message: float | None = Field(
        None, gt=0, description="vCPU-seconds per message, when CPU use was measured."
    )
    memory_gib_per_rate: float | None = Field(
        None, gt=0, description="GiB in use per msg/min of per-instance throughput."
    )
    local_mb_s: float | None = Field(
        None,
        gt=0,
        description="What the current size's instance store sustains (fio); default: "
        "peak_mb_s, else the measured EBS MB/s per instance",
    )
    peak_mb_s: float | None = Field(
        None,
        gt=0,
        description="The highest EBS MB/s per instance the work drove in the window: a "
        "throttled fleet's recent MB/s is its limit, not its need",
    )
    volume_mb_s: float | None = Field(
        None,
        gt=0,
        description="The volume's own limit, when throughput plateaus below the instance's "
        "EBS baseline (a gp2/gp3 volume, not the instance, is the bottleneck)",
    )

    @classmethod
    def measured(
        cls,
        current: InstanceFacts,
        *,
        arrivals_per_min: float,
        msgs_per_min: float,
        ebs_mb_s: float = 0.0,
        ebs_iops: float = 0.0,
        cpu_pct: float | None = None,
        mem_used_pct: float | None = None,
        volume_mb_s: float | None = None,
    ) -> Demand:
        """Per-message costs from per-instance measurements on the current type."""
        per_sec = msgs_per_min / 60.0
        return cls(
            arrivals_per_min=arrivals_per_min,
            msgs_per_min=msgs_per_min,
            mb_per_message=ebs_mb_s / per_sec,
            ios_per_message=ebs_iops / per_sec,
            cpu_seconds_per_message=(
                cpu_pct / 100.0 * current.vcpus / per_sec if cpu_pct else None  # 0%: unknown
            ),
            memory_gib_per_rate=(
                mem_used_pct / 100.0 * current.memory_gib / msgs_per_min if mem_used_pct else None
            ),
            volume_mb_s=volume_mb_s,
        )

    @property
    def ebs_mb_s(self) -> float:
        """The measured per-instance EBS throughput these figures came from."""
        return self.mb_per_message * self.msgs_per_min / 60.0

    @property
    def needed_mb_s(self) -> float:
        """EBS MB/s an instance needs to work unthrottled: the peak seen, if above today's."""
        return max(self.ebs_mb_s, self.peak_mb_s or 0.0)
