"""PagerDuty Events API v2: trigger on ALARM (and INSUFFICIENT_DATA), resolve on OK.

One `dedup_key` per alarm and group, so a retry, a repeat or the resolve all land on the same
incident: PagerDuty itself makes sending twice harmless. The summary names the cause before the
symptom (`alerts.render.page_summary`); `custom_details` carry findings, evidence and advice;
`links` go to the CloudWatch console and the Auto Scaling group.
"""

from __future__ import annotations

from typing import Any

from scaler.alerts.destinations.base import Backend, DeliveryError, SendContext, backends
from scaler.alerts.destinations.http import post_json
from scaler.alerts.render import Page
from scaler.alerts.settings import PagerDutyDestination

__all__ = ["PagerDuty"]


@backends.register("pagerduty")
class PagerDuty(Backend):
    """Events API v2 over HTTPS."""

    type = "pagerduty"

    settings: PagerDutyDestination

    def __init__(self, settings: PagerDutyDestination) -> None:
        super().__init__(settings)

    def target(self) -> str:
        return f"{self.settings.url} (routing key from {self.settings.routing_key.describe()})"

    def body(self, page: Page, secret: str | None = None) -> dict[str, Any]:
        key = secret if secret is not None else f"<{self.settings.routing_key.describe()}>"
        base: dict[str, Any] = {"routing_key": key, "dedup_key": page.dedup_key}
        if page.state == "OK":
            return {**base, "event_action": "resolve"}
        alarm = page.alarm
        diagnosis = page.diagnosis or {}
        details: dict[str, Any] = {
            "alarm": {
                "name": alarm.name,
                "state": alarm.state,
                "previous_state": alarm.previous_state,
                "reason": alarm.reason,
                "kind": alarm.kind,
                "received_as": alarm.shape,
            },
            "advice": page.advice,
            "facts": page.facts,
            "findings": [
                {k: f[k] for k in ("kind", "severity", "start", "summary", "evidence")}
                for f in diagnosis.get("findings", [])
            ],
            "recommendations": [
                {
                    k: r.get(k)
                    for k in (
                        "at",
                        "desired_capacity",
                        "current_capacity",
                        "instance_type",
                        "reason",
                    )
                }
                for r in diagnosis.get("recommendations", [])
            ],
        }
        if page.unavailable:
            details["diagnosis_unavailable"] = page.unavailable
        return {
            **base,
            "event_action": "trigger",
            "payload": {
                "summary": page.summary,
                "severity": page.severity,
                "source": page.asg or page.alarm.name,
                "component": page.group or "unmatched",
                "group": "scaler",
                "class": page.cause or "diagnosis unavailable",
                "timestamp": alarm.at.isoformat(),
                "custom_details": details,
            },
            "links": [link.model_dump() for link in page.links],
            "client": "scaler",
        }

    def send(self, page: Page, ctx: SendContext) -> str:
        key = ctx.secret(self.settings.routing_key, "pagerduty routing key")
        status, text = post_json(self.settings.url, self.body(page, key), ctx, what="pagerduty")
        if status != 202:
            raise DeliveryError(f"pagerduty: answered HTTP {status} ({text}), expected 202")
        action = "resolve" if page.state == "OK" else "trigger"
        return f"HTTP {status}: {action} {page.dedup_key}"
