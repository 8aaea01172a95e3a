"""Backtests: replay windows through the engine with a policy and command-line overrides."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scaler.engine import Evaluation, evaluate
from scaler.errors import InputError
from scaler.instances.catalog import Catalog
from scaler.logs import get_logger
from scaler.models import Advice
from scaler.policy import GroupPolicy, Policy
from scaler.signals import Window
from scaler.sources.plausible import drop_implausible

__all__ = ["Overrides", "evaluate_windows", "group_policy_for", "run_backtest"]

log = get_logger(__name__)


class Overrides(BaseModel):
    """Command-line settings that win over the policy for every group."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_type: str | None = None
    min_size: int | None = Field(None, ge=0)
    max_size: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Overrides:
        if (
            self.min_size is not None
            and self.max_size is not None
            and self.min_size > self.max_size
        ):
            raise ValueError(f"--min-size {self.min_size} is above --max-size {self.max_size}")
        return self


def group_policy_for(policy: Policy, name: str) -> GroupPolicy:
    """The policy group for a replay group: same name, else the policy's only group."""
    for group in policy.groups:
        if group.name == name:
            return group
    if len(policy.groups) == 1:
        log.info("backtest.group_mapped", replay_group=name, policy_group=policy.groups[0].name)
        return policy.groups[0]
    raise InputError(
        f"replay group {name!r} matches no policy group; policy groups: {', '.join(policy.names())}"
    )


def evaluate_windows(
    windows: Mapping[str, Window],
    policy: Policy,
    overrides: Overrides | None = None,
    catalog: Catalog | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Evaluation]:
    """Evaluate each replay group with its policy group and the overrides.

    Values no fleet can have are missing data here too, as in a live tick (the same
    `drop_implausible`), each named through `warn` (default: a log warning).
    """
    overrides = overrides or Overrides()
    if not any(w.length for w in windows.values()):
        raise InputError(
            "the replay holds no datapoints (a header alone, or no rows in the span); "
            "add rows of timestamp,signal,value"
        )
    catalog = policy.catalog(catalog)
    out = []
    for name, window in windows.items():
        group = group_policy_for(policy, name)
        instance_type = overrides.instance_type or group.instance_type
        facts = catalog.require(instance_type) if instance_type else None
        lo, hi = group.bounds()
        lo = overrides.min_size if overrides.min_size is not None else lo
        hi = overrides.max_size if overrides.max_size is not None else hi
        if lo > hi:
            raise InputError(f"group {name!r}: min size {lo} is above max size {hi}")
        plausible = drop_implausible(window, in_service=None, max_size=hi)
        for note in plausible.notes:
            (warn or _log_warning)(f"group {name!r}: {note}")
        out.append(
            evaluate(plausible.window, group, instance=facts, bounds=(lo, hi), catalog=catalog)
        )
    return out


def run_backtest(
    windows: Mapping[str, Window],
    policy: Policy,
    overrides: Overrides | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> Advice:
    """Findings and the advice timeline for every replay group."""
    evaluations = evaluate_windows(windows, policy, overrides, warn=warn)
    return Advice.merge(e.backtest_advice() for e in evaluations)


def _log_warning(message: str) -> None:
    log.warning("backtest.implausible", note=message)
