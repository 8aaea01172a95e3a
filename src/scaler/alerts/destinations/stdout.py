"""stdout: the enriched alarm as `scaler enrich --format json` prints it (in Lambda, the log)."""

from __future__ import annotations

import json
import sys
from typing import Any

from scaler.alerts.destinations.base import Backend, SendContext, backends
from scaler.alerts.render import Page
from scaler.alerts.settings import StdoutDestination

__all__ = ["Stdout", "enriched_json"]


def enriched_json(page: Page) -> dict[str, Any]:
    """The enriched alarm: the alarm, its group, the pager summary and the advice JSON."""
    out: dict[str, Any] = {
        "alarm": page.alarm.model_dump(mode="json"),
        "group": page.group,
        "summary": page.summary,
        "diagnosis": page.diagnosis,
    }
    if page.unavailable:
        out["diagnosis_unavailable"] = page.unavailable
    return out


@backends.register("stdout")
class Stdout(Backend):
    """One JSON line per page on standard output."""

    type = "stdout"

    settings: StdoutDestination

    def __init__(self, settings: StdoutDestination) -> None:
        super().__init__(settings)

    def target(self) -> str:
        return "stdout"

    def body(self, page: Page, secret: str | None = None) -> dict[str, Any]:
        return enriched_json(page)

    def send(self, page: Page, ctx: SendContext) -> str:
        print(json.dumps(self.body(page)), file=sys.stdout, flush=True)
        return "printed"
