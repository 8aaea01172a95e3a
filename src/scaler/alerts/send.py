"""Every destination of the policy gets the page, side by side, within the time budget.

A failing destination is reported and never stops the others. PagerDuty deduplicates by its key;
Slack and SNS are kept to one message per alarm state change through the state store's audit
log: after a send, an outcome record whose tick id is derived from the state change
(`append_audit` keeps one per (tick, group, phase)); a retry (Lambda's, or a person's) finds it
and skips. A failed send records nothing, so its retry sends. No intent is written: the
controller would take an open intent for an interrupted scaling action. Two deliveries of the
same notification running at the very same moment could still both send (SNS rarely does that).
Called by `scaler enrich --send` and the enrich Lambda.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from scaler.alerts.destinations import Backend, DeliveryError, SendContext, backends
from scaler.alerts.render import Page
from scaler.alerts.safe import clean
from scaler.alerts.settings import AlertSettings
from scaler.aws import Clients
from scaler.control.audit import AuditRecord, AwsCall
from scaler.control.store import StateStore
from scaler.errors import ScalerError

__all__ = ["Delivery", "deliver", "preview"]


class Delivery(BaseModel):
    """What one destination got, or would get in a dry run."""

    model_config = ConfigDict(frozen=True)

    type: str
    target: str
    request: dict[str, Any]
    sent: bool = False
    skipped: str | None = None
    note: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        """The destination was due the page and did not take it."""
        return self.error is not None


def _backends(settings: AlertSettings) -> list[Backend]:
    return [backends.get(d.type)(d) for d in settings.destinations]


def preview(page: Page, settings: AlertSettings) -> list[Delivery]:
    """What each destination would be sent, its secrets shown only as where they come from."""
    return [
        Delivery(type=b.type, target=b.target(), request=b.body(page)) for b in _backends(settings)
    ]


def deliver(
    page: Page,
    settings: AlertSettings,
    *,
    clients: Clients | None,
    store: StateStore | None,
    environ: Mapping[str, str],
    now: datetime,
    deadline: float | None = None,
) -> list[Delivery]:
    """Send `page` to every destination at once; each ends by `deadline` (monotonic) at latest."""
    end = min(deadline or float("inf"), time.monotonic() + settings.send_seconds)
    ctx = SendContext(clients=clients, environ=environ, deadline=end)
    chosen = _backends(settings)
    due: list[tuple[int, Backend]] = []
    results: dict[int, Delivery] = {}
    for i, backend in enumerate(chosen):
        base = Delivery(type=backend.type, target=backend.target(), request=backend.body(page))
        skip = _already_sent(store, backend, page) if backend.once_per_change else None
        if skip:
            results[i] = base.model_copy(update={"skipped": skip})
        else:
            results[i] = base
            due.append((i, backend))
    with ThreadPoolExecutor(max_workers=max(len(due), 1), thread_name_prefix="deliver") as pool:
        futures = {i: pool.submit(_send, backend, page, ctx) for i, backend in due}
    for i, backend in due:
        sent, note = futures[i].result()
        if sent:
            results[i] = results[i].model_copy(update={"sent": True, "note": note})
            if backend.once_per_change and store is not None:
                _record(store, backend, page, now)
        else:
            results[i] = results[i].model_copy(update={"error": note})
    return [results[i] for i in range(len(chosen))]


def _send(backend: Backend, page: Page, ctx: SendContext) -> tuple[bool, str]:
    try:
        return True, backend.send(page, ctx)
    except DeliveryError as exc:
        return False, clean(exc, 500)
    except Exception as exc:  # one destination's bug never stops the others' pages
        return False, clean(f"{backend.type}: {type(exc).__name__}: {exc}", 500)


def _audit_key(page: Page) -> str:
    """The audit log is keyed by Auto Scaling group, as `scaler run` records it."""
    return page.asg or page.group or "unmatched"


def _tick_id(backend: Backend, page: Page) -> str:
    return f"page-{backend.type}-{page.change_id}"


def _already_sent(store: StateStore | None, backend: Backend, page: Page) -> str | None:
    """Why this sender skips (the change was sent before), or None to send."""
    if store is None:
        return None
    try:
        records = store.audit(_audit_key(page), tick_id=_tick_id(backend, page))
    except ScalerError:
        return None  # an unreadable store never swallows a page: send, at worst twice
    done = next((r for r in records if r.phase == "outcome"), None)
    if done is None:
        return None
    return f"already sent for this alarm state change at {done.at:%Y-%m-%d %H:%M:%S} UTC"


def _record(store: StateStore, backend: Backend, page: Page, now: datetime) -> bool:
    record = AuditRecord(
        tick_id=_tick_id(backend, page),
        group=_audit_key(page),
        at=now,
        mode="apply",
        phase="outcome",
        result="applied",
        call=AwsCall(
            service=backend.type,
            operation="Page",
            params={"alarm": page.alarm.name, "state": page.state, "change": page.change_id},
        ),
        notes=[page.summary[:300]],
    )
    try:
        return store.append_audit(record)
    except ScalerError:
        return False
