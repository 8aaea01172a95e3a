"""AWS Lambda entry point for paging: one alarm in, the enriched page out to every destination.

Subscribed to the alarm topic(s) (a Lambda SNS event), or invoked by an alarm's Lambda action
or an EventBridge rule: every shape `scaler enrich` reads. Configured as the tick handler is:
`SCALER_POLICY` names the policy in the package (its `alerts:` block says where pages go),
`SCALER_STATE=dynamodb://TABLE` keeps Slack and SNS to one message per alarm state change
(Lambda's disk does not outlive the invocation, so SQLite is refused when they are named).

Deadline discipline, as in `lambda_handler`: the diagnosis gets its budget but never more than
a third of the time left, and every destination must finish before the invocation's deadline
less a margin. The page always goes out (fail open). A destination that fails after its retries
fails the invocation (`EnrichFailedError`), so the platform retries it or sends it to the
on-failure destination; retries never double-page (PagerDuty's dedup key, the state store).
A notification that is not an alarm fails too (InputError): the dead-letter queue keeps it.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from scaler.alerts.destinations import backends
from scaler.alerts.parse import parse_document
from scaler.alerts.pipeline import enrich
from scaler.alerts.send import deliver
from scaler.aws import Clients, make_clients
from scaler.control import SqliteStateStore, open_store
from scaler.control.store import StateStore
from scaler.errors import InputError, ScalerError
from scaler.lambda_handler import LambdaContext
from scaler.logs import configure_logging, get_logger
from scaler.policy import load_policy

__all__ = ["DEADLINE_MARGIN_MS", "EnrichFailedError", "LambdaContext", "handler", "run_invocation"]

POLICY_ENV = "SCALER_POLICY"
#: Everything ends this long before the invocation times out: room to log and return.
DEADLINE_MARGIN_MS = 3_000
log = get_logger(__name__)


class EnrichFailedError(ScalerError):
    """A destination did not take the page: fail, so the platform retries (deduplicated)."""


def handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda's entry point (`scaler.enrich_handler.handler`)."""
    configure_logging(os.environ.get("SCALER_LOG_LEVEL", "info"), "json")
    return run_invocation(event, context, clients=_warm_clients(), environ=os.environ)


@functools.cache
def _warm_clients() -> Clients:
    """Made once per execution environment and reused while it stays warm."""
    return make_clients()


def run_invocation(
    event: Mapping[str, Any],
    context: LambdaContext,
    *,
    clients: Clients,
    environ: Mapping[str, str],
    now: datetime | None = None,
) -> dict[str, Any]:
    """One alarm as a Lambda invocation: the deliveries as JSON, or EnrichFailedError."""
    deadline = (
        time.monotonic() + (context.get_remaining_time_in_millis() - DEADLINE_MARGIN_MS) / 1000
    )
    policy = load_policy(environ.get(POLICY_ENV, "policy.yaml"))
    alarm = parse_document(dict(event), "event")
    settings = policy.alerts
    left = max(deadline - time.monotonic(), 0.0)
    # The diagnosis may use its budget, but never the time the destinations need.
    budget = min(settings.budget_seconds, left / 3)
    tuned = policy.model_copy(
        update={"alerts": settings.model_copy(update={"budget_seconds": max(budget, 0.1)})}
    )
    enriched = enrich(alarm, tuned, clients, now=now or datetime.now(UTC))
    store = _store(policy, clients, environ)
    try:
        deliveries = deliver(
            enriched.page,
            settings,
            clients=clients,
            store=store,
            environ=environ,
            now=now or datetime.now(UTC),
            deadline=deadline,
        )
    finally:
        if store is not None:
            store.close()
    result = {
        "request_id": context.aws_request_id,
        "alarm": alarm.name,
        "state": alarm.state,
        "group": enriched.page.group,
        "summary": enriched.page.summary,
        "diagnosis_unavailable": enriched.page.unavailable,
        "deliveries": [d.model_dump(mode="json", exclude={"request"}) for d in deliveries],
    }
    print(json.dumps(result), flush=True)  # the invocation's log keeps what was sent
    if enriched.unmatched:
        log.warning("alarm_names_no_group", alarm=alarm.name, why=enriched.page.unavailable)
    failed = [d for d in deliveries if d.failed]
    if failed:
        raise EnrichFailedError(
            f"alarm {alarm.name} ({alarm.state}): " + "; ".join(f"{d.error}" for d in failed)
        )
    return result


def _store(policy: Any, clients: Clients, environ: Mapping[str, str]) -> StateStore | None:
    if not any(backends.get(d.type).once_per_change for d in policy.alerts.destinations):
        return None
    store = open_store(policy.state, environ=environ, dynamodb=clients.dynamodb)
    if isinstance(store, SqliteStateStore):
        store.close()
        raise InputError(
            "Slack and SNS are sent once per alarm state change, recorded in the state store, "
            "and Lambda keeps no disk: set SCALER_STATE=dynamodb://TABLE"
        )
    return store
