"""The alarm every shape is read into: what paged, when, in which state, and where.

Built by `alerts.parse` (every string in it already made safe by `alerts.safe.clean`); read by
`match`, `render` and the destinations.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, computed_field

__all__ = ["Alarm", "AlarmKind", "AlarmState", "MetricRef"]

AlarmState = Literal["ALARM", "OK", "INSUFFICIENT_DATA"]
AlarmKind = Literal["metric", "metric-math", "anomaly", "composite", "alertmanager"]


class MetricRef(BaseModel):
    """One metric an alarm watches (a sub-metric of a math expression included)."""

    model_config = ConfigDict(frozen=True)

    namespace: str | None = None
    name: str | None = None
    dimensions: dict[str, str] = Field(default_factory=dict)
    account: str | None = Field(
        None,
        description="The account the metric is in, when a cross-account alarm names it "
        "(`AccountId` on the metric); else the alarm's own.",
    )


class Alarm(BaseModel):
    """What paged, when, in which state, and the metrics, children or labels that say where.

    Every string here has passed `clean`: printable, one line, bounded.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    state: AlarmState
    previous_state: str | None = None
    reason: str
    at: AwareDatetime
    kind: AlarmKind = "metric"
    shape: str = Field(description="How it arrived: 'SNS message', 'EventBridge event', ...")
    arn: str | None = None
    account: str | None = Field(
        None, description="The account the alarm is in (12 digits); None when it does not say."
    )
    region: str | None = Field(
        None, description="The alarm's region code (us-east-1); None when it does not say."
    )
    metrics: list[MetricRef] = Field(default_factory=list)
    expression: str | None = Field(None, description="The math or anomaly band expression.")
    rule: str | None = Field(None, description="A composite alarm's rule.")
    children: list[str] = Field(default_factory=list, description="Child alarms named.")
    labels: dict[str, str] = Field(default_factory=dict, description="Alertmanager labels.")
    link: str | None = Field(None, description="Alertmanager's or Prometheus's URL, if sent.")
    original: JsonValue = Field(None, exclude=True, description="The document as received.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dimensions(self) -> dict[str, str]:
        """Every dimension of every metric (sub-metrics of math alarms included)."""
        out: dict[str, str] = {}
        for metric in self.metrics:
            for key, value in metric.dimensions.items():
                out.setdefault(key, value)
        return out

    @property
    def identity(self) -> str:
        """What names this alarm across its state changes: its ARN, else its name."""
        return self.arn or self.name
