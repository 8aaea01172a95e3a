"""A table of instance-type facts, bundled for offline use (backtests, the demo)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

from scaler.errors import InputError

__all__ = ["Catalog", "InstanceFacts", "bundled_catalog"]

_BYTES_PER_MB = 1_000_000  # AWS quotes EBS throughput in decimal MB/s (1 Mbps = 1/8 MB/s)


class InstanceFacts(BaseModel):
    """What one instance type can do: vCPUs, memory, EBS limits, local storage."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    instance_type: str
    vcpus: int
    memory_gib: float
    ebs_baseline_mb_s: float
    ebs_max_mb_s: float
    ebs_baseline_iops: int
    ebs_max_iops: int
    local_storage_gb: int = 0
    local_nvme: bool = False
    architecture: str = "x86_64"
    current_generation: bool = True

    @property
    def family(self) -> str:
        """The family part of the type name: m5d for m5d.xlarge."""
        return self.instance_type.split(".", 1)[0]

    @property
    def ebs_bursts(self) -> bool:
        """Whether the type's EBS bandwidth is 'up to' a burst above its baseline."""
        return self.ebs_max_mb_s > self.ebs_baseline_mb_s

    @property
    def ebs_baseline_bytes_per_min(self) -> float:
        """Sustained EBS bytes per minute, the unit of the ebs_*_bytes signals."""
        return self.ebs_baseline_mb_s * _BYTES_PER_MB * 60

    @property
    def ebs_baseline_ops_per_min(self) -> float:
        """Sustained EBS operations per minute, the unit of the ebs_*_ops signals."""
        return self.ebs_baseline_iops * 60.0


class Catalog:
    """Instance facts by type name, with prices where known."""

    def __init__(
        self,
        types: Iterable[InstanceFacts],
        prices: Mapping[str, float] | None = None,
        *,
        taken: str = "unknown",
        source: str = "unknown",
    ) -> None:
        self._types = {t.instance_type: t for t in types}
        self.prices = dict(prices or {})
        self.taken, self.source = taken, source

    def get(self, instance_type: str) -> InstanceFacts | None:
        """Facts for a type, or None if the catalog does not know it."""
        return self._types.get(instance_type)

    def require(self, instance_type: str) -> InstanceFacts:
        """Facts for a type, or an InputError naming the type and the catalog's date."""
        facts = self.get(instance_type)
        if facts is None:
            raise InputError(
                f"instance type {instance_type!r} is not in the instance catalog "
                f"(taken {self.taken}); known types include "
                f"{', '.join(sorted(self._types)[:12])}"
            )
        return facts

    def price(self, instance_type: str) -> float | None:
        """On-demand USD per hour, or None when the price table lacks the type."""
        return self.prices.get(instance_type)

    def all(self) -> list[InstanceFacts]:
        """Every type, in name order."""
        return [self._types[name] for name in sorted(self._types)]


@cache
def bundled_catalog() -> Catalog:
    """The snapshot shipped with scaler, with its date and source."""
    data = resources.files("scaler.instances") / "data"
    types_doc = json.loads((data / "instances.json").read_text())
    prices_doc = json.loads((data / "prices.json").read_text())
    return Catalog(
        (InstanceFacts.model_validate(t) for t in types_doc["types"]),
        prices_doc["per_hour"],
        taken=types_doc["taken"],
        source=types_doc["source"],
    )
