"""Closed-loop scenarios: what arrives, on which fleet, and how each policy is tuned.

A scenario is a YAML file (or one of the named ones shipped in `scaler/sim/data`); `load_scenario`
validates it and names the file and the field of any mistake. `scaler simulate` and the bench
call this module; the closed loop (`scaler.sim.loop`) reads the result.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from scaler.errors import InputError
from scaler.signals import Series

__all__ = [
    "Arrivals",
    "FleetSpec",
    "PolicyTuning",
    "Scenario",
    "load_scenario",
    "scenario_names",
]

_DATA = "data"
_ARRIVAL_KINDS = ("constant", "steps", "sine", "replay")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Step(_Strict):
    """From `at_minute` on, `rate` messages a minute (reached over `ramp_minutes`)."""

    at_minute: int = Field(ge=0)
    rate: float = Field(ge=0)
    ramp_minutes: int = Field(0, ge=0)


class ConstantArrivals(_Strict):
    """The same rate every minute."""

    kind: Literal["constant"]
    rate: float = Field(ge=0)


class StepArrivals(_Strict):
    """A piecewise-constant rate, with optional linear ramps between steps."""

    kind: Literal["steps"]
    steps: list[Step] = Field(min_length=1)


class SineArrivals(_Strict):
    """mean + amplitude * sin(2 pi (t - phase) / period): a diurnal load."""

    kind: Literal["sine"]
    mean: float = Field(ge=0)
    amplitude: float = Field(ge=0)
    period_minutes: int = Field(1440, ge=1)
    phase_minutes: int = 360
    weekend_factor: float = Field(1.0, gt=0, description="Rate multiplier on days 6 and 7.")


class ReplayArrivals(_Strict):
    """The `queue_sent` signal of a replay CSV (relative paths are relative to the scenario)."""

    kind: Literal["replay"]
    file: str
    group: str | None = Field(None, description="Which group of a multi-group replay file.")


Arrivals = Annotated[
    ConstantArrivals | StepArrivals | SineArrivals | ReplayArrivals, Field(discriminator="kind")
]


class FleetSpec(_Strict):
    """The Auto Scaling group at the start: desired capacity and bounds."""

    desired: int = Field(ge=1)
    min_size: int = Field(1, ge=0)
    max_size: int = Field(40, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> FleetSpec:
        if not self.min_size <= self.desired <= self.max_size:
            raise ValueError(
                f"need min_size <= desired <= max_size, got {self.min_size}, {self.desired}, "
                f"{self.max_size}"
            )
        return self


class PolicyTuning(_Strict):
    """The knobs of the comparison policies, as a team would have set them."""

    cpu_scale_in: bool = Field(True, description="Target tracking on CPU may scale in.")
    backlog_per_instance: float = Field(
        2000, gt=0, description="Target of the SQS guide's backlog-per-instance metric."
    )
    step_alarm_messages: float = Field(
        2000, gt=0, description="Queue depth (visible) that fires the step-scaling alarm."
    )
    keda_queue_length: float = Field(
        1000, gt=0, description="KEDA's queueLength: messages per instance it scales to."
    )
    fixed_size: int = Field(10, ge=1, description="The fixed fleet's size (the stopgap).")


class Scenario(_Strict):
    """One closed-loop scenario; every field has a documented default except the load."""

    name: str
    description: str = ""
    start: AwareDatetime = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    minutes: int = Field(ge=30, le=60 * 24 * 31)
    arrivals: Arrivals
    poisson: bool = Field(True, description="Draw each minute's arrivals from a Poisson law.")
    instance_type: str = "m5.xlarge"
    cpu_s_per_msg: float = Field(0.24, gt=0)
    mb_per_msg: float = Field(40.0, ge=0)
    hot_io_share: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Share of a message's disk I/O that moves to local NVMe (scaler+type).",
    )
    fleet: FleetSpec
    launch_minutes: int = Field(3, ge=0, description="Launch to InService.")
    warmup_minutes: int = Field(5, ge=0, description="InService to warm (metrics count).")
    metric_delay_minutes: tuple[int, int] = Field(
        (1, 3), description="CloudWatch datapoints arrive this many minutes late (min, max)."
    )
    surge_end_minute: int | None = Field(
        None, description="Where 'time to drain after the surge' is measured from."
    )
    page_threshold_s: float = Field(
        7200, gt=0, description="Page when the oldest message is older than this."
    )
    tick_minutes: int = Field(1, ge=1, description="How often scaler's controller ticks.")
    tuning: PolicyTuning = Field(default_factory=PolicyTuning)
    scaler: dict[str, Any] = Field(
        default_factory=dict,
        description="scaler's group policy (capacity, rules, rails, type_change, ...).",
    )

    @model_validator(mode="after")
    def _delays(self) -> Scenario:
        low, high = self.metric_delay_minutes
        if not 0 <= low <= high:
            raise ValueError(f"metric_delay_minutes needs 0 <= min <= max, got {[low, high]}")
        return self

    def with_minutes(self, minutes: int) -> Scenario:
        """The same scenario run for `minutes` (--days)."""
        return self.model_copy(update={"minutes": minutes})


def scenario_names() -> list[str]:
    """The scenarios shipped with scaler, by name."""
    folder = resources.files("scaler.sim") / _DATA
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def load_scenario(name_or_path: str, *, minutes: int | None = None) -> tuple[Scenario, Series]:
    """A scenario by shipped name or YAML path (run for `minutes` if given), and its arrival
    rate per minute (before Poisson noise)."""
    path = Path(name_or_path)
    if name_or_path in scenario_names():
        where = f"scenario {name_or_path}"
        text = (resources.files("scaler.sim") / _DATA / f"{name_or_path}.yaml").read_text("utf-8")
        base = None
    elif path.suffix in (".yaml", ".yml") or path.exists():
        where, base = str(path), path.parent
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read scenario: {exc.strerror or exc}") from exc
    else:
        raise InputError(
            f"unknown scenario {name_or_path!r}; valid: {', '.join(scenario_names())} "
            "(or a path to a scenario YAML file)"
        )
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"{where}: a scenario is a mapping of fields, got {type(raw).__name__}")
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise InputError(_explain(exc, where)) from exc
    if minutes is not None:
        scenario = scenario.with_minutes(minutes)
    try:
        return scenario, arrival_rates(scenario, base)
    except InputError as exc:
        raise InputError(f"{where}: field 'arrivals': {exc}") from exc


def arrival_rates(scenario: Scenario, base: Path | None) -> Series:
    """Messages a minute, minute by minute, before Poisson noise."""
    spec, n = scenario.arrivals, scenario.minutes
    t = np.arange(n, dtype=np.float64)
    if isinstance(spec, ConstantArrivals):
        return np.full(n, spec.rate)
    if isinstance(spec, SineArrivals):
        rate = spec.mean + spec.amplitude * np.sin(
            2 * math.pi * (t - spec.phase_minutes) / spec.period_minutes
        )
        weekend = (t // 1440) % 7 >= 5
        return np.maximum(np.where(weekend, rate * spec.weekend_factor, rate), 0.0)
    if isinstance(spec, StepArrivals):
        rate = np.full(n, spec.steps[0].rate)
        previous = spec.steps[0].rate
        for step in spec.steps[1:]:
            ramp = np.clip((t - step.at_minute + 1) / max(step.ramp_minutes, 1), 0.0, 1.0)
            rate = np.where(t >= step.at_minute, previous + (step.rate - previous) * ramp, rate)
            previous = step.rate
        return rate
    return _replayed(spec, scenario.name, n, base)


def _replayed(spec: ReplayArrivals, name: str, n: int, base: Path | None) -> Series:
    from scaler.sources.replay import read_replay

    path = Path(spec.file)
    if not path.is_absolute() and base is not None:
        path = base / path
    windows = read_replay(path)
    group = spec.group or next(iter(windows))
    if group not in windows:
        raise InputError(
            f"scenario {name}: arrivals.group {group!r} is not in {path}; "
            f"valid: {', '.join(windows)}"
        )
    sent = windows[group].get("queue_sent")
    if sent is None:
        raise InputError(f"scenario {name}: {path} has no queue_sent signal for {group!r}")
    filled = np.nan_to_num(np.asarray(sent, dtype=np.float64), nan=0.0)
    return np.resize(filled, n) if len(filled) else np.zeros(n)


def _explain(exc: ValidationError, where: str) -> str:
    """One line per mistake: the field's dotted path and what is wrong with it."""
    lines = []
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) > 1 and loc[0] == "arrivals" and loc[1] in _ARRIVAL_KINDS:
            loc = (loc[0], *loc[2:])  # the union's tag is not a field the user wrote
        field = ".".join(str(part) for part in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            valid = _valid_fields(error["loc"][:-1])
            lines.append(f"unknown field {field!r}; valid: {', '.join(valid)}")
        else:
            lines.append(f"field {field!r}: {error['msg']}")
    return f"{where}: " + "; ".join(lines)


def _valid_fields(loc: tuple[int | str, ...]) -> list[str]:
    models: dict[str, type[BaseModel]] = {
        "fleet": FleetSpec,
        "tuning": PolicyTuning,
        "constant": ConstantArrivals,
        "steps": StepArrivals,
        "sine": SineArrivals,
        "replay": ReplayArrivals,
    }
    model: type[BaseModel] = Scenario
    for part in loc:
        if isinstance(part, int):  # the only list of mappings: arrivals.steps
            model = Step
        elif part in models:
            model = models[part]
    return sorted(model.model_fields)
