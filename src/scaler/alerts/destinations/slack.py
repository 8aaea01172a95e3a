"""Slack incoming webhook: Block Kit (header, cause, advice, numbers, links), a text fallback.

Within Slack's limits: a header is at most 150 characters, a section's text 3,000, a field 2,000
and at most 10 fields; the fallback `text` is kept under 3,000. Outside text is escaped for
mrkdwn (`&`, `<`, `>`), so an alarm name can never mention `<!channel>` or forge a link.
"""

from __future__ import annotations

from typing import Any

from scaler.alerts.destinations.base import Backend, DeliveryError, SendContext, backends
from scaler.alerts.destinations.http import post_json
from scaler.alerts.render import Page
from scaler.alerts.settings import SlackDestination

__all__ = ["Slack", "mrkdwn"]

_HEADER, _SECTION, _FIELD, _FIELDS, _FALLBACK = 150, 3000, 2000, 10, 3000


def mrkdwn(text: str, limit: int = _SECTION) -> str:
    """Outside text made inert in Slack's mrkdwn, cut to `limit` characters."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@backends.register("slack")
class Slack(Backend):
    """An incoming webhook; recorded once per alarm state change (Slack keeps no dedup key)."""

    type = "slack"
    once_per_change = True

    settings: SlackDestination

    def __init__(self, settings: SlackDestination) -> None:
        super().__init__(settings)

    def target(self) -> str:
        return f"Slack incoming webhook (URL from {self.settings.webhook_url.describe()})"

    def body(self, page: Page, secret: str | None = None) -> dict[str, Any]:
        alarm = page.alarm
        state = "RESOLVED" if page.state == "OK" else page.state
        header = f"{state}: {page.group or 'no group'}: {page.cause or alarm.name}"
        if page.unavailable:
            cause = f"*Diagnosis unavailable:* {mrkdwn(page.unavailable)}"
        elif page.cause:
            cause = f"*Cause: {page.cause}.* {mrkdwn(page.cause_text or '')}"
        else:
            cause = "*Cause:* no rule found the fleet in a named state"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(header, _HEADER)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(cause, _SECTION)}},
        ]
        if page.advice:
            advice = f"*Advice:* {mrkdwn(page.advice)}"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": advice}})
        fields = [
            {"type": "mrkdwn", "text": _cut(f"*{mrkdwn(k, 200)}*\n{mrkdwn(v, 1500)}", _FIELD)}
            for k, v in list(page.facts.items())[:_FIELDS]
        ]
        if fields:
            blocks.append({"type": "section", "fields": fields})
        paged = f"Paged by {alarm.state} {alarm.name}: {alarm.reason}"
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn(paged, 2000)}]}
        )
        if page.links:
            links = " · ".join(f"<{link.href}|{mrkdwn(link.text, 200)}>" for link in page.links)
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
        return {"text": mrkdwn(page.summary, _FALLBACK), "blocks": blocks}

    def send(self, page: Page, ctx: SendContext) -> str:
        url = ctx.secret(self.settings.webhook_url, "slack webhook URL")
        status, text = post_json(url, self.body(page), ctx, what="slack")
        if status != 200:
            raise DeliveryError(f"slack: answered HTTP {status} ({text}), expected 200")
        return f"HTTP {status}"
