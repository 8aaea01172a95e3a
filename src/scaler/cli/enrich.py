"""`scaler enrich --policy P [ALARM|-] [--send]`: an alarm, diagnosed, paged to destinations.

Without `--send` it prints the diagnosis and exactly what each destination would be sent (a dry
run, as everywhere in scaler). With it, every destination gets the page; one that fails makes
the exit code 1 while the others still get theirs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from scaler.alerts.destinations import backends
from scaler.alerts.destinations.stdout import enriched_json
from scaler.alerts.parse import Alarm, parse_alarm
from scaler.alerts.pipeline import Enriched, enrich
from scaler.alerts.safe import MAX_INPUT_BYTES
from scaler.alerts.send import Delivery, deliver, preview
from scaler.alerts.settings import AlertSettings
from scaler.aws import Clients
from scaler.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, commands
from scaler.cli.common import add_aws_arguments, clients_from
from scaler.cli.views import render_tick
from scaler.control.store import open_store
from scaler.errors import InputError
from scaler.policy import Policy, load_policy

__all__ = ["read_alarm"]


def read_alarm(source: str) -> Alarm:
    """The alarm in file `source` ('-': stdin), read no further than an alarm can be long."""
    where = "<stdin>" if source == "-" else source
    try:
        if source == "-":
            raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with Path(source).open("rb") as handle:
                raw = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{where}: cannot read the alarm: {exc.strerror or exc}") from None
    return parse_alarm(raw, where)


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--policy", required=True, help="policy YAML naming the groups")
    parser.add_argument(
        "alarm",
        nargs="?",
        default="-",
        help="the alarm: CloudWatch through SNS (message, HTTP envelope, Lambda event), "
        "EventBridge, a Lambda alarm action, or an Alertmanager webhook (default: stdin)",
    )
    parser.add_argument(
        "--send",
        action="store_true",
        help="send the page to the policy's alerts.destinations (default: show what would go)",
    )
    parser.add_argument("--format", choices=["text", "json"], default="text")
    add_aws_arguments(parser)
    return _run


def _run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    alarm = read_alarm(args.alarm)
    clients = clients_from(args)
    now = datetime.now(UTC)
    enriched = enrich(alarm, policy, clients, now=now)
    page = enriched.page
    # stdout is this command's own output, printed below: the others are the deliveries.
    settings = policy.alerts.model_copy(
        update={"destinations": [d for d in policy.alerts.destinations if d.type != "stdout"]}
    )
    if args.send:
        deliveries = _send(enriched, policy, settings, clients, now)
    else:
        deliveries = preview(page, settings)
    if args.format == "json":
        out = enriched_json(page)
        out["deliveries"] = [d.model_dump(mode="json") for d in deliveries]
        out["sent"] = bool(args.send)
        print(json.dumps(out, indent=2))
    else:
        print(_text(enriched, deliveries, sent=args.send))
    failed = [d for d in deliveries if d.failed]
    for delivery in failed:
        print(f"scaler: failed: {delivery.error}", file=sys.stderr)
    if failed:
        return EXIT_FAILED
    if enriched.unmatched:
        print(f"scaler: error: {page.unavailable}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_FAILED if page.unavailable else EXIT_OK


def _send(
    enriched: Enriched,
    policy: Policy,
    settings: AlertSettings,
    clients: Clients,
    now: datetime,
) -> list[Delivery]:
    needs_store = any(backends.get(d.type).once_per_change for d in settings.destinations)
    store = (
        open_store(policy.state, environ=os.environ, dynamodb=clients.dynamodb)
        if needs_store
        else None
    )
    try:
        return deliver(
            enriched.page, settings, clients=clients, store=store, environ=os.environ, now=now
        )
    finally:
        if store is not None:
            store.close()


def _text(enriched: Enriched, deliveries: list[Delivery], *, sent: bool) -> str:
    page = enriched.page
    alarm = page.alarm
    head = f"{alarm.state} {alarm.name} at {alarm.at:%Y-%m-%d %H:%M} UTC: {alarm.reason}"
    if enriched.tick is not None:
        lines = [render_tick(enriched.tick, f"{page.summary}\n{head}")]
    else:
        lines = [page.summary, head]
    if page.unavailable and enriched.tick is not None:
        lines.append(f"diagnosis unavailable: {page.unavailable}")
    if not deliveries:
        lines += ["", "No destinations under alerts: in the policy; nothing to send."]
        return "\n".join(lines)
    lines += ["", "Sent:" if sent else "Would send (a dry run; --send sends):"]
    for d in deliveries:
        if sent:
            outcome = (
                f"FAILED: {d.error}"
                if d.failed
                else (f"skipped: {d.skipped}" if d.skipped else f"sent ({d.note})")
            )
            lines.append(f"  {d.type} -> {d.target}: {outcome}")
        else:
            lines.append(f"  {d.type} -> {d.target}:")
            lines += [
                f"    {line}"
                for line in json.dumps(d.request, indent=2, ensure_ascii=False).splitlines()
            ]
    return "\n".join(lines)


commands.register("enrich")(
    ("diagnose a paging alarm and send the enriched page (PagerDuty, Slack, SNS)", _add)
)
