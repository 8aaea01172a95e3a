"""What every destination backend is: a body from a page, and a way to send it in time."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scaler.alerts.render import Page
from scaler.alerts.settings import SecretRef
from scaler.aws import Clients, RetryPolicy, call_aws
from scaler.errors import ScalerError
from scaler.registry import Registry

__all__ = ["Backend", "DeliveryError", "SendContext", "backends"]


class DeliveryError(ScalerError):
    """A destination that did not take the page (after its retries); the others still send."""


@dataclass(frozen=True)
class SendContext:
    """What sending needs: AWS clients, the environment for secrets, and the deadline."""

    clients: Clients | None
    environ: Mapping[str, str]
    deadline: float  # time.monotonic() by which the backend gives up
    sleep: Callable[[float], None] = field(default=time.sleep)

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(self.deadline - time.monotonic(), 0.0)

    def aws_retry(self) -> RetryPolicy:
        """AWS retries (throttling, 5xx) that stop before the deadline does."""
        return RetryPolicy(max_total_s=max(self.remaining() - 1.0, 0.0))

    def secret(self, ref: SecretRef, what: str) -> str:
        """The secret `ref` names, read now; DeliveryError (never the secret) if unreadable."""
        if ref.env is not None:
            value = self.environ.get(ref.env, "")
            if not value:
                raise DeliveryError(f"{what}: environment variable {ref.env} is not set")
            return value
        if self.clients is None:
            raise DeliveryError(f"{what}: ssm {ref.ssm} needs AWS credentials")
        try:
            answer = call_aws(
                "ssm:GetParameter",
                what,
                self.clients.ssm.get_parameter,
                retry=self.aws_retry(),
                Name=str(ref.ssm),
                WithDecryption=True,
            )
        except ScalerError as exc:
            raise DeliveryError(f"{what}: {exc}") from exc
        value = answer.get("Parameter", {}).get("Value", "")
        if not value:
            raise DeliveryError(f"{what}: SSM parameter {ref.ssm} is empty")
        return value


class Backend(ABC):
    """One destination type; `once_per_change` ones are recorded in the state store."""

    type: ClassVar[str]
    #: True when the destination cannot deduplicate itself (Slack, SNS): the state store does.
    once_per_change: ClassVar[bool] = False

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @abstractmethod
    def target(self) -> str:
        """Where it goes, without secrets: a URL, a topic ARN, 'stdout'."""

    @abstractmethod
    def body(self, page: Page, secret: str | None = None) -> dict[str, Any]:
        """What is sent for `page`; without `secret`, a placeholder naming where it comes from."""

    @abstractmethod
    def send(self, page: Page, ctx: SendContext) -> str:
        """Send `page`; a short note of what the destination answered, or DeliveryError."""


#: type name (as the policy writes it) -> the backend class, built from its settings.
backends: Registry[type[Backend]] = Registry("alert destination")
