"""`scaler policy validate FILE` and `scaler policy schema`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from scaler.cli import EXIT_OK, commands
from scaler.policy import load_policy, policy_schema


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    sub = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    validate = sub.add_parser("validate", help="check a policy file and summarize it")
    validate.add_argument("file")
    sub.add_parser("schema", help="print the policy JSON Schema (for editors)")
    return _run


def _run(args: argparse.Namespace) -> int:
    if args.policy_command == "schema":
        print(json.dumps(policy_schema(), indent=2))
        return EXIT_OK
    policy = load_policy(args.file)
    print(f"{args.file}: valid policy, mode {policy.mode}, {len(policy.groups)} group(s)")
    for group in policy.groups:
        enabled = ", ".join(r.name for r in group.enabled_rules())
        lo, hi = group.bounds()
        print(
            f"  {group.name}: asg {group.state_key}, queue {group.queue_name}, "
            f"bounds [{lo}, {hi}], rules: {enabled}"
        )
    return EXIT_OK


commands.register("policy")(("validate a policy or print its schema", _add))
