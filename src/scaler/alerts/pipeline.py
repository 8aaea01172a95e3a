"""One alarm through the whole path: match -> diagnose (within budget) -> page. Fails open.

Whatever goes wrong after the alarm is parsed (no group matches, a composite's children cannot
be read, the diagnosis fails or overruns its budget), the result is still a page, marked
"diagnosis unavailable: <why>". Shared by `scaler enrich` and the enrich Lambda, so both send
the same page for the same alarm.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from scaler.alerts.diagnose import Diagnosis, diagnose
from scaler.alerts.match import group_for_alarm
from scaler.alerts.parse import Alarm
from scaler.alerts.render import Page, build_page
from scaler.aws import Clients
from scaler.errors import InputError, ScalerError
from scaler.live import TickAdvice
from scaler.policy import Policy

__all__ = ["Enriched", "enrich"]


class Enriched(BaseModel):
    """The page, the tick behind it (if it ran), and whether the alarm matched no group."""

    model_config = ConfigDict(frozen=True)

    page: Page
    tick: TickAdvice | None = None
    unmatched: bool = False  # the alarm named no group: fix the policy or the alarm (exit 2)


def enrich(alarm: Alarm, policy: Policy, clients: Clients, *, now: datetime) -> Enriched:
    """The page for `alarm`, diagnosed as of the moment it changed state (never later than now)."""
    region = clients.cloudwatch.meta.region_name
    try:
        group = group_for_alarm(
            alarm, policy, cloudwatch=clients.cloudwatch, labels=policy.alerts.labels
        )
    except ScalerError as exc:
        page = build_page(alarm, None, Diagnosis(unavailable=str(exc)), region=region)
        return Enriched(page=page, unmatched=isinstance(exc, InputError))
    when = min(alarm.at, now)
    diagnosis = diagnose(policy, group, clients, at=when, budget_s=policy.alerts.budget_seconds)
    page = build_page(alarm, group, diagnosis, region=region)
    return Enriched(page=page, tick=diagnosis.tick)
