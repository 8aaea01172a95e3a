"""What every detector is: settings that validate themselves, a window in, an outcome out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scaler.instances.alternatives import InstanceConstraints, State
from scaler.instances.catalog import Catalog, InstanceFacts, bundled_catalog
from scaler.models import Finding, Unevaluated
from scaler.numeric import Mask
from scaler.registry import Registry
from scaler.signals import Window

__all__ = [
    "Opinion",
    "Rule",
    "RuleContext",
    "RuleOutcome",
    "RuleSettings",
    "SmoothedStateSettings",
    "SustainedStateSettings",
    "rules",
]


class RuleSettings(BaseModel):
    """Settings every rule takes; each rule extends this with its own, with defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="Set false to skip this rule for the group.")


class SustainedStateSettings(RuleSettings):
    """Settings of a rule that names a state once it has held: how long, across which gaps."""

    sustain_minutes: int = Field(
        5, ge=1, description="Minutes the state must hold to be a finding."
    )
    bridge_minutes: int = Field(3, ge=0, description="Missing minutes that do not break the state.")


class SmoothedStateSettings(SustainedStateSettings):
    """A sustained-state rule that reads its signals through a rolling median."""

    smooth_minutes: int = Field(3, ge=1, description="Median over this many minutes against noise.")


class RuleContext(BaseModel):
    """Facts about the fleet that are not metrics: what it runs on, what it scales on.

    Rules read instance facts and prices only through here (`catalog` carries the policy's
    prices and any refreshed snapshot), and propose only types `instance_choice` allows.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    instance: InstanceFacts | None = None
    cpu_target_pct: float = Field(
        60.0, description="The CPU target of the group's existing scaling policy, if any."
    )
    catalog: Catalog = Field(default_factory=bundled_catalog)
    instance_choice: InstanceConstraints = Field(default_factory=InstanceConstraints)

    def price(self, instance_type: str) -> float | None:
        """USD per instance-hour (the policy's price, else the bundled table), or None."""
        return self.catalog.price(instance_type)

    def choices(self) -> list[InstanceFacts]:
        """Every other type the policy's `instance_choice` lets advice propose."""
        current = self.instance
        if current is None:
            return []
        return list(self.catalog.allowed(current, self.instance_choice))

    def nothing_allowed(self, wanted: str) -> Opinion:
        """An opinion that proposes no type because `instance_choice` allows none that fits."""
        return Opinion(
            reason=f"no type is proposed: the policy's instance_choice "
            f"({self.instance_choice.describe()}) allows no {wanted}"
        )


class Opinion(BaseModel):
    """What a rule advises for a finding beyond capacity: a type, a mitigation, or both."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_type: str | None = None
    action: str | None = Field(None, description="e.g. instance_refresh, a labelled mitigation.")
    reason: str


class RuleOutcome(BaseModel):
    """Findings of one rule over a window, and the minutes at which it held (causally)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    kind: str
    findings: list[Finding]
    active: Mask
    unevaluated: Unevaluated | None = None

    @classmethod
    def skipped(cls, kind: str, window: Window, missing: list[str], why: str) -> RuleOutcome:
        """An outcome that judges nothing because signals are missing; it says which."""
        return cls(
            kind=kind,
            findings=[],
            active=np.zeros(window.length, dtype=bool),
            unevaluated=Unevaluated(kind=kind, group=window.group, missing=missing, reason=why),
        )


class Rule(ABC):
    """A detector: pure, deterministic, causal (minute t depends only on minutes <= t)."""

    name: ClassVar[str]
    Settings: ClassVar[type[RuleSettings]] = RuleSettings
    #: Signals without which the rule cannot judge at all.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The resource that bounds the fleet while a finding holds, for ranking other types.
    bound: ClassVar[State | None] = None
    #: While a finding holds, more instances may not help: capacity scales out in steps.
    steps_scale_out: ClassVar[bool] = False

    def __init__(self, settings: RuleSettings | None = None) -> None:
        self.settings = settings if settings is not None else self.Settings()

    def evaluate(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Findings over `window`, or a skipped outcome naming the missing signals."""
        missing = window.missing(self.requires)
        if missing:
            why = f"{self.name} needs {', '.join(missing)}, which the source did not report"
            return RuleOutcome.skipped(self.name, window, missing, why)
        return self.too_short(window) or self.detect(window, context)

    def min_minutes(self) -> int:
        """Minutes of data the rule needs to judge at all: a sustained state's span, else 1."""
        s = self.settings
        return s.sustain_minutes if isinstance(s, SustainedStateSettings) else 1

    def too_short(self, window: Window) -> RuleOutcome | None:
        """A skipped outcome saying how much data the rule needs, for a window shorter than
        that (so a short backtest never reads as "nothing found"); None otherwise."""
        need = self.min_minutes()
        if window.length >= need:
            return None
        why = f"{self.name} needs at least {need} minutes of data; this window has {window.length}"
        return RuleOutcome.skipped(self.name, window, [], why)

    def recommend(self, finding: Finding, context: RuleContext) -> Opinion | None:
        """Advice that follows from one of this rule's findings; most rules have none."""
        return None

    @abstractmethod
    def detect(self, window: Window, context: RuleContext) -> RuleOutcome:
        """Judge a window that has every required signal."""


rules: Registry[type[Rule]] = Registry("rule")
