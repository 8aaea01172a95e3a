"""SNS: the enriched alarm republished to a topic, with the original alarm inside it.

For other consumers (a ticket system, a chat bot): one JSON message, `{"scaler": {...the
page...}, "alarm": {...as received...}}`, within SNS's 256 KB; if the original would not fit it
is left out and the message says so. Recorded once per alarm state change (SNS keeps no dedup
key on standard topics).
"""

from __future__ import annotations

import json
from typing import Any

from scaler.alerts.destinations.base import Backend, DeliveryError, SendContext, backends
from scaler.alerts.render import Page
from scaler.alerts.safe import MAX_INPUT_BYTES
from scaler.alerts.settings import SnsDestination
from scaler.aws import call_aws
from scaler.errors import ScalerError

__all__ = ["Sns"]

_SUBJECT = 100  # SNS: ASCII, no line breaks, under 100 characters


@backends.register("sns")
class Sns(Backend):
    """Publish to the policy's topic."""

    type = "sns"
    once_per_change = True

    settings: SnsDestination

    def __init__(self, settings: SnsDestination) -> None:
        super().__init__(settings)

    def target(self) -> str:
        return self.settings.topic_arn

    def body(self, page: Page, secret: str | None = None) -> dict[str, Any]:
        enriched = page.model_dump(mode="json", exclude={"alarm"})
        enriched["alarm"] = page.alarm.model_dump(mode="json")
        message = {"scaler": enriched, "alarm": page.alarm.original}
        text = json.dumps(message)
        if len(text.encode()) > MAX_INPUT_BYTES:
            message["alarm"] = {"omitted": "the original alarm would pass SNS's 256 KB limit"}
            enriched["diagnosis"] = None
            text = json.dumps(message)
        state = "RESOLVED" if page.state == "OK" else page.state
        subject = f"{state} {page.group or 'no group'}: {page.cause or page.alarm.name}"
        ascii_subject = subject.encode("ascii", "replace").decode()[: _SUBJECT - 1]
        return {"TopicArn": self.settings.topic_arn, "Subject": ascii_subject, "Message": text}

    def send(self, page: Page, ctx: SendContext) -> str:
        if ctx.clients is None:
            raise DeliveryError("sns: needs AWS credentials")
        try:
            answer = call_aws(
                "sns:Publish",
                page.group or "unmatched",
                ctx.clients.sns.publish,
                retry=ctx.aws_retry(),
                **self.body(page),
            )
        except ScalerError as exc:
            raise DeliveryError(f"sns: {exc}") from exc
        return f"MessageId {answer.get('MessageId', '?')}"
