"""One alarm through the whole path: match -> diagnose (within budget) -> page. Fails open.

Whatever goes wrong after the alarm is parsed (no group matches, a composite's children cannot
be read, the diagnosis fails or overruns its budget), the result is still a page, marked
"diagnosis unavailable: <why>". Shared by `scaler enrich` and the enrich Lambda, so both send
the same page for the same alarm.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from scaler.alerts.diagnose import Diagnosis, diagnose
from scaler.alerts.match import group_for_alarm
from scaler.alerts.parse import Alarm
from scaler.alerts.render import Page, build_page
from scaler.aws import Clients, call_aws
from scaler.errors import InputError, ScalerError
from scaler.live import TickAdvice, place_clients
from scaler.models import Place
from scaler.policy import Policy

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

__all__ = ["Enriched", "enrich"]


class Enriched(BaseModel):
    """The page, the tick behind it (if it ran), and whether the alarm matched no group."""

    model_config = ConfigDict(frozen=True)

    page: Page
    tick: TickAdvice | None = None
    unmatched: bool = False  # the alarm named no group: fix the policy or the alarm (exit 2)


def enrich(alarm: Alarm, policy: Policy, clients: Clients, *, now: datetime) -> Enriched:
    """The page for `alarm`, diagnosed as of the moment it changed state (never later than now).

    The group is matched where the alarm fired (a group naming no region is in `clients`'
    region, as in the live tick) and diagnosed there: `diagnose` reads it through its own
    account's role and region (`live.place_clients`).
    """
    region = clients.cloudwatch.meta.region_name
    try:
        group = group_for_alarm(
            alarm,
            policy,
            cloudwatch=_alarm_cloudwatch(alarm, policy, clients),
            labels=policy.alerts.labels,
            default_region=region,
            own_account=lambda: _own_account(clients),
        )
    except ScalerError as exc:
        page = build_page(alarm, None, Diagnosis(unavailable=str(exc)), region=region)
        return Enriched(page=page, unmatched=isinstance(exc, InputError))
    when = min(alarm.at, now)
    diagnosis = diagnose(policy, group, clients, at=when, budget_s=policy.alerts.budget_seconds)
    page = build_page(alarm, group, diagnosis, region=group.region or region)
    return Enriched(page=page, tick=diagnosis.tick)


def _alarm_cloudwatch(alarm: Alarm, policy: Policy, clients: Clients) -> CloudWatchClient | None:
    """CloudWatch where the alarm is, for a composite's children (they are where it is): through
    the role of an account under `accounts:`, else with scaler's own credentials."""
    if alarm.kind != "composite":
        return None
    account = alarm.account if alarm.account in policy.accounts else None
    where = place_clients(policy, Place(account=account, region=alarm.region), clients)
    return where.clients.cloudwatch


def _own_account(clients: Clients) -> str:
    """The account of scaler's credentials (GetCallerIdentity needs no permission)."""
    answer = call_aws(
        "sts:GetCallerIdentity",
        "scaler's own account",
        clients.sts.get_caller_identity,
        expect="Account",
    )
    return str(answer["Account"])
