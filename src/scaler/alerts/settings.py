"""The policy's `alerts:` block: where enriched pages go, and how long enrichment may take.

Secrets (PagerDuty's routing key, Slack's webhook URL) are never written in the policy: only an
environment variable's name (`{env: NAME}`) or an SSM SecureString parameter's name
(`{ssm: /param}`). Imported by `policy.py` (so it imports nothing of scaler's above errors).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DEFAULT_LABELS",
    "PAGERDUTY_EVENTS_URL",
    "AlertSettings",
    "Destination",
    "LabelField",
    "PagerDutyDestination",
    "SecretRef",
    "SlackDestination",
    "SnsDestination",
    "StdoutDestination",
]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
#: What an Alertmanager label may name: one of the group's names, or where the group is.
LabelField = Literal["name", "auto_scaling_group", "queue", "account", "region"]
#: Alertmanager label -> the group field it names, when the policy names none.
DEFAULT_LABELS: dict[str, LabelField] = {
    "group": "name",
    "asg": "auto_scaling_group",
    "queue": "queue",
    "account": "account",
    "region": "region",
}
_PLAINTEXT = "__plaintext__"
_SECRET_HELP = (
    "a secret is never written in the policy: write {env: NAME} (an environment variable) or "
    "{ssm: /parameter/name} (an SSM SecureString parameter)"
)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretRef(_Strict):
    """Where a secret is kept: exactly one of an environment variable or an SSM parameter."""

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    ssm: str | None = Field(None, pattern=r"^/?[A-Za-z0-9_.\-/]+$")

    @model_validator(mode="before")
    @classmethod
    def _not_plaintext(cls, value: Any) -> Any:
        if isinstance(value, dict) and _PLAINTEXT in value:
            raise ValueError(_SECRET_HELP)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.ssm is None):
            raise ValueError("name exactly one of env or ssm")
        return self

    def describe(self) -> str:
        """Where the secret comes from, never the secret: 'env PAGERDUTY_ROUTING_KEY'."""
        return f"env {self.env}" if self.env is not None else f"ssm {self.ssm}"


def _hide_plaintext(value: Any) -> Any:
    # The secret itself never reaches a validation error's "(got ...)": only a marker does.
    return {_PLAINTEXT: True} if isinstance(value, str) else value


class PagerDutyDestination(_Strict):
    """PagerDuty Events API v2: trigger on ALARM, resolve on OK, one dedup key per alarm."""

    type: Literal["pagerduty"]
    routing_key: SecretRef = Field(description="The service integration's routing key.")
    url: str = Field(
        PAGERDUTY_EVENTS_URL,
        pattern=r"^https?://",
        description="Events API endpoint (set for a proxy or a test).",
    )

    _secret = field_validator("routing_key", mode="before")(_hide_plaintext)


class SlackDestination(_Strict):
    """A Slack incoming webhook: Block Kit with a plain-text fallback."""

    type: Literal["slack"]
    webhook_url: SecretRef

    _secret = field_validator("webhook_url", mode="before")(_hide_plaintext)


class SnsDestination(_Strict):
    """The enriched alarm, with the original inside it, republished to an SNS topic."""

    type: Literal["sns"]
    topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


class StdoutDestination(_Strict):
    """The enriched alarm printed, as `scaler enrich` prints it."""

    type: Literal["stdout"]


Destination = Annotated[
    PagerDutyDestination | SlackDestination | SnsDestination | StdoutDestination,
    Field(discriminator="type"),
]


class AlertSettings(_Strict):
    """Where `scaler enrich` and the enrich Lambda send pages."""

    budget_seconds: float = Field(
        8.0,
        gt=0,
        le=60,
        description="Longest the diagnosis may take; past it the page goes out without it.",
    )
    send_seconds: float = Field(
        20.0,
        gt=0,
        le=300,
        description="Longest one destination may take, its retries (429, 5xx) included.",
    )
    destinations: list[Destination] = Field(default_factory=list)
    labels: dict[str, LabelField] = Field(
        default_factory=lambda: dict(DEFAULT_LABELS),
        description="Alertmanager labels that name a group, and which of its fields each names "
        "(account and region: where it is, when one name is in several places).",
    )
