"""AWS Lambda entry point: one `scaler run` tick per scheduled invocation.

Configured by environment, as a function's settings are:
- `SCALER_POLICY`: the policy file in the deployment package (default `policy.yaml`);
- `SCALER_STATE=dynamodb://TABLE` (or `state.dynamodb_table` in the policy): Lambda's disk
  does not outlive the invocation, so SQLite state is refused here;
- `SCALER_APPLY=1` acts within the rails (or `mode: apply` in the policy); without either, and
  with `SCALER_KILL_SWITCH` set, the tick only advises.

Each invocation's request id owns the groups' leases, so overlapping invocations never both act.
The tick stops starting new groups, and writing intents, 20 s before the invocation's deadline,
and every call is bounded, so nothing outlives the invocation. A tick that could not do its job
(including a group whose lease a dead holder left: the fleet runs without its controller)
raises `TickFailedError` after logging its report, so the function's Errors metric (and an
alarm on it) says so until it is recovered.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.config import Config

from scaler.aws import Clients, RetryPolicy, make_clients
from scaler.errors import InputError, ScalerError
from scaler.logs import configure_logging

__all__ = [
    "APPLY_ENV",
    "DEADLINE_MARGIN_MS",
    "POLICY_ENV",
    "LambdaContext",
    "TickFailedError",
    "handler",
    "run_invocation",
]

POLICY_ENV = "SCALER_POLICY"
APPLY_ENV = "SCALER_APPLY"
#: Stop starting groups, and writing intents, this long before the invocation times out. Once
#: an intent is written, what remains is bounded: SetDesiredCapacity (one attempt, at most
#: 2 s to connect + 5 s to read) and the outcome write (retried within 4 s, one attempt at most
#: 7 s): under 20 s. So no call outlives the invocation and no intent is left open.
DEADLINE_MARGIN_MS = 20_000
#: Every call's own bound in Lambda, and the retries' total: see DEADLINE_MARGIN_MS.
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5)
RETRY = RetryPolicy(max_attempts=3, max_total_s=4.0, initial_backoff_s=0.2, max_backoff_s=2.0)
_TRUE = frozenset({"1", "true", "yes", "on"})


class LambdaContext(Protocol):
    """The parts of Lambda's context object a tick uses."""

    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


class TickFailedError(ScalerError):
    """The tick ran but could not do its job for every group (its report says which)."""


def handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda's entry point (`scaler.lambda_handler.handler`)."""
    configure_logging(os.environ.get("SCALER_LOG_LEVEL", "info"), "json")
    return run_invocation(context, clients=_warm_clients(), environ=os.environ)


@functools.cache
def _warm_clients() -> Clients:
    """Made once per execution environment and reused while it stays warm."""
    return make_clients(config=CLIENT_CONFIG)


def run_invocation(
    context: LambdaContext,
    *,
    clients: Clients,
    environ: Mapping[str, str],
    now: datetime | None = None,
) -> dict[str, Any]:
    """One tick as a Lambda invocation: the report as JSON, or TickFailedError after logging it."""
    # The tick's code (policy, rules, numpy, the controller) loads on the first invocation, not
    # at import: Lambda's init phase then costs little more than boto3's own import.
    from scaler.control import SqliteStateStore, open_store
    from scaler.controller import run_tick
    from scaler.policy import load_policy

    policy = load_policy(environ.get(POLICY_ENV, "policy.yaml"))
    store = open_store(policy.state, environ=environ, dynamodb=clients.dynamodb, retry=RETRY)
    if isinstance(store, SqliteStateStore):
        store.close()
        raise InputError(
            "Lambda keeps no disk between invocations: set SCALER_STATE=dynamodb://TABLE "
            "or state.dynamodb_table in the policy"
        )
    stop = threading.Event()
    remaining_s = (context.get_remaining_time_in_millis() - DEADLINE_MARGIN_MS) / 1000
    deadline = threading.Timer(max(remaining_s, 0.0), stop.set)
    deadline.daemon = True
    deadline.start()
    try:
        report = run_tick(
            policy,
            clients,
            store,
            now=now or datetime.now(UTC),
            apply=environ.get(APPLY_ENV, "").strip().lower() in _TRUE,
            environ=environ,
            owner=f"lambda:{context.aws_request_id}",
            stop=stop,
            retry=RETRY,
        )
    finally:
        deadline.cancel()
        store.close()
    result = report.model_dump(mode="json")
    print(json.dumps(result), flush=True)  # the invocation's log keeps the whole report
    if not report.ok:
        failed = [g.group for g in report.groups if not g.ok] + [e.group for e in report.errors]
        raise TickFailedError(
            f"tick {report.tick_id} could not do its job for: {', '.join(failed)}"
        )
    return result
