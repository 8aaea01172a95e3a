"""A table of instance-type facts, bundled for offline use (backtests, the demo)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from scaler.errors import InputError

if TYPE_CHECKING:
    from scaler.instances.alternatives import InstanceConstraints

__all__ = ["BITS_PER_BYTE", "Catalog", "InstanceFacts", "bundled_catalog", "load_snapshot"]

_BYTES_PER_MB = 1_000_000  # AWS quotes EBS throughput in decimal MB/s (1 Mbps = 1/8 MB/s)
BITS_PER_BYTE = 8


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
    local_disks: int = 0
    local_nvme: bool = False
    architecture: str = "x86_64"
    current_generation: bool = True

    @cached_property
    def family(self) -> str:
        """The family part of the type name: m5d for m5d.xlarge."""
        return self.instance_type.split(".", 1)[0]

    @cached_property
    def size(self) -> str:
        """The size part of the type name: xlarge for m5d.xlarge."""
        return self.instance_type.split(".", 1)[-1]

    @property
    def ebs_bursts(self) -> bool:
        """Whether the type's EBS bandwidth is 'up to' a burst above its baseline."""
        return self.ebs_max_mb_s > self.ebs_baseline_mb_s

    @property
    def ebs_baseline_mbps(self) -> float:
        """Sustained EBS bandwidth in megabits per second, as AWS's tables quote it."""
        return self.ebs_baseline_mb_s * BITS_PER_BYTE

    @property
    def ebs_max_mbps(self) -> float:
        """Burst (or, without burst, sustained) EBS bandwidth in megabits per second."""
        return self.ebs_max_mb_s * BITS_PER_BYTE

    @property
    def ebs_baseline_bytes_per_min(self) -> float:
        """Sustained EBS bytes per minute, the unit of the ebs_*_bytes signals."""
        return self.ebs_baseline_mb_s * _BYTES_PER_MB * 60

    @property
    def ebs_baseline_ops_per_min(self) -> float:
        """Sustained EBS operations per minute, the unit of the ebs_*_ops signals."""
        return self.ebs_baseline_iops * 60.0


class Catalog:
    """Instance facts by type name, with on-demand prices where known."""

    def __init__(
        self,
        types: Iterable[InstanceFacts],
        prices: Mapping[str, float] | None = None,
        *,
        taken: str = "unknown",
        source: str = "unknown",
        prices_taken: str = "unknown",
        prices_source: str = "unknown",
        overridden: Iterable[str] = (),
    ) -> None:
        self._types = {t.instance_type: t for t in types}
        self.prices = dict(prices or {})
        self.taken, self.source = taken, source
        self.prices_taken, self.prices_source = prices_taken, prices_source
        #: Types whose price came from the policy rather than the bundled table.
        self.overridden = frozenset(overridden)
        self._allowed: dict[tuple[str, str], tuple[InstanceFacts, ...]] = {}

    def get(self, instance_type: str) -> InstanceFacts | None:
        """Facts for a type, or None if the catalog does not know it."""
        return self._types.get(instance_type)

    def require(self, instance_type: str) -> InstanceFacts:
        """Facts for a type, or an InputError naming the type and the catalog's date."""
        facts = self.get(instance_type)
        if facts is None:
            close = difflib.get_close_matches(instance_type, self._types, n=5, cutoff=0.6)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"known types include {', '.join(sorted(self._types)[:12])};"
            )
            raise InputError(
                f"instance type {instance_type!r} is not in the instance catalog "
                f"(taken {self.taken}); {hint} `scaler catalog refresh` fetches every type from EC2"
            )
        return facts

    def price(self, instance_type: str) -> float | None:
        """On-demand USD per hour, or None when the price table lacks the type."""
        return self.prices.get(instance_type)

    def price_note(self, instance_type: str) -> str:
        """Where a type's price comes from, or a plain statement that it is missing."""
        if instance_type in self.overridden:
            return f"{instance_type}: price from the policy's prices"
        if instance_type in self.prices:
            return (
                f"{instance_type}: on-demand price from {self.prices_source} "
                f"(taken {self.prices_taken})"
            )
        return (
            f"{instance_type}: no price known (the bundled table of {self.prices_taken} lacks "
            "it); add it under `prices:` in the policy to compare its cost"
        )

    def all(self) -> list[InstanceFacts]:
        """Every type, in name order."""
        return [self._types[name] for name in sorted(self._types)]

    def allowed(
        self, current: InstanceFacts, constraints: InstanceConstraints
    ) -> tuple[InstanceFacts, ...]:
        """Every other type `constraints` lets advice propose for a fleet of `current`.

        In name order; worked out once per (current type, constraints), as every ranking and
        every type rule of every tick asks the same question of the same catalog.
        """
        key = (current.instance_type, constraints.model_dump_json())
        if key not in self._allowed:
            self._allowed[key] = tuple(
                t
                for t in self.all()
                if t.instance_type != current.instance_type
                and constraints.allows(t, current, self.price(t.instance_type))
            )
        return self._allowed[key]

    def with_prices(self, overrides: Mapping[str, float]) -> Catalog:
        """A copy whose prices are the policy's where it gives one (a user's own discounts)."""
        if not overrides:
            return self
        return Catalog(
            self._types.values(),
            {**self.prices, **overrides},
            taken=self.taken,
            source=self.source,
            prices_taken=self.prices_taken,
            prices_source=self.prices_source,
            overridden=self.overridden | set(overrides),
        )

    def snapshot(self) -> dict[str, Any]:
        """The instances.json document for this catalog (facts only; prices live apart)."""
        return {
            "taken": self.taken,
            "source": self.source,
            "types": [t.model_dump() for t in self.all()],
        }


def _catalog_from_docs(
    types_doc: Mapping[str, Any], prices_doc: Mapping[str, Any], where: str
) -> Catalog:
    try:
        types = [InstanceFacts.model_validate(t) for t in types_doc["types"]]
        return Catalog(
            types,
            prices_doc.get("per_hour", {}),
            taken=str(types_doc["taken"]),
            source=str(types_doc["source"]),
            prices_taken=str(prices_doc.get("taken", "unknown")),
            prices_source=str(prices_doc.get("source", "unknown")),
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise InputError(f"{where}: not an instance catalog snapshot: {exc}") from exc


def _bundled_docs() -> tuple[dict[str, Any], dict[str, Any]]:
    data = resources.files("scaler.instances") / "data"
    types_doc = json.loads((data / "instances.json").read_text(encoding="utf-8"))
    prices_doc = json.loads((data / "prices.json").read_text(encoding="utf-8"))
    return types_doc, prices_doc


@cache
def bundled_catalog() -> Catalog:
    """The snapshot shipped with scaler, with its date and source."""
    types_doc, prices_doc = _bundled_docs()
    return _catalog_from_docs(types_doc, prices_doc, "bundled instances.json")


def load_snapshot(path: str | Path) -> Catalog:
    """A catalog from a snapshot file written by `scaler catalog refresh`, bundled prices."""
    path = Path(path)
    try:
        types_doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read instance catalog snapshot: {exc}") from exc
    if not isinstance(types_doc, dict):
        raise InputError(f"{path}: an instance catalog snapshot is a JSON object")
    return _catalog_from_docs(types_doc, _bundled_docs()[1], str(path))
