"""`scaler history [--policy P] [--group G] [--limit N]`: the audit log of decisions.

Reads the state store only (DynamoDB needs AWS clients, SQLite none); never acts.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

from scaler.cli import EXIT_OK, commands
from scaler.cli.common import add_aws_arguments, clients_from
from scaler.control import STATE_ENV, StateStore, open_store
from scaler.control.settings import StateSettings
from scaler.errors import InputError
from scaler.policy import load_policy

__all__: list[str] = []


def _add_history(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--policy", help="policy YAML: its groups and its state location")
    parser.add_argument(
        "--group",
        action="append",
        help="only this group (repeatable): a policy group, or an Auto Scaling group's name",
    )
    parser.add_argument("--limit", type=int, default=50, help="newest records per group (50)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    add_aws_arguments(parser)
    return _history


def _history(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise InputError(f"--limit {args.limit}: must be at least 1")
    policy = load_policy(args.policy) if args.policy else None
    names = args.group or (policy.names() if policy else [])
    # The audit log is keyed by Auto Scaling group (with its account and region, when the
    # policy names them); a policy maps its group names to those keys.
    asg_of = {g.name: g.state_key for g in policy.groups} if policy else {}
    groups = [asg_of.get(name, name) for name in names]
    if not groups:
        raise InputError("give --group NAME, or --policy FILE to show every group of a policy")
    settings = policy.state if policy else StateSettings()
    needs_aws = bool(settings.dynamodb_table) or "dynamodb://" in os.environ.get(STATE_ENV, "")
    store: StateStore = open_store(
        settings, dynamodb=clients_from(args).dynamodb if needs_aws else None
    )
    try:
        records = [r for g in groups for r in store.audit(g, limit=args.limit)]
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
    elif not records:
        print(f"no decisions recorded yet for {', '.join(groups)}")
    else:
        for record in records:
            print(record.summary())
            for note in record.notes:
                print(f"    - {note}")
    return EXIT_OK


commands.register("history")(("show the audit log of decisions, advised or applied", _add_history))
