"""Destination backends, one module each, registered by the `type` a policy names them with.

A backend lays a `Page` out in its own format (`body`, shown by a dry run with its secrets
hidden) and sends it (`send`). `alerts.send` runs them side by side, within the time budget,
and keeps Slack and SNS to one message per alarm state change. Unknown types are rejected by the
policy's validation with the valid list; `backends.get` does the same for code.
"""

from __future__ import annotations

from scaler.alerts.destinations import pagerduty, slack, sns, stdout
from scaler.alerts.destinations.base import Backend, DeliveryError, SendContext, backends

__all__ = [
    "Backend",
    "DeliveryError",
    "SendContext",
    "backends",
    "pagerduty",
    "slack",
    "sns",
    "stdout",
]
