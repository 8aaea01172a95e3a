"""`scaler state init [--policy P]`: create the state store a policy (or SCALER_STATE) names.

SQLite: the file and its tables (safe to run again; an existing file is checked, not
replaced). DynamoDB: the table with its documented key schema (pk and sk strings, on-demand
billing, TTL on `expires_at`); an existing table is left as it is.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from scaler.cli import EXIT_OK, commands
from scaler.cli.common import add_aws_arguments, clients_from
from scaler.control import SqliteStateStore, create_table
from scaler.control.settings import StateSettings
from scaler.control.store import state_location
from scaler.policy import load_policy

__all__: list[str] = []


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("action", choices=["init"], help="init: create the state store")
    parser.add_argument("--policy", help="policy YAML whose state: block names the store")
    add_aws_arguments(parser)
    return _run


def _run(args: argparse.Namespace) -> int:
    settings = load_policy(args.policy).state if args.policy else StateSettings()
    table, path = state_location(settings)
    if table is not None:
        create_table(clients_from(args).dynamodb, table)
        print(
            f"state table {table} ready: keys pk (hash) and sk (range), both strings; "
            "on-demand billing; TTL on expires_at"
        )
        return EXIT_OK
    assert path is not None
    SqliteStateStore(path).close()
    print(f"state file {path} ready")
    return EXIT_OK


commands.register("state")(("create the state store (SQLite file or DynamoDB table)", _add))
