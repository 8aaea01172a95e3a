"""`scaler advise --policy FILE`: one dry-run tick over every group of a policy, from AWS."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from scaler.cli import EXIT_FAILED, EXIT_OK, commands
from scaler.cli.common import add_aws_arguments, clients_from, now
from scaler.cli.views import render_tick
from scaler.live import advise
from scaler.policy import load_policy
from scaler.render import render_json

__all__: list[str] = []


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--policy", required=True, help="policy YAML naming the groups")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    add_aws_arguments(parser)
    return _run


def _run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    tick = advise(policy, clients_from(args), now=now(args))
    if args.format == "json":
        print(render_json(tick.advice()))
    else:
        print(render_tick(tick, f"scaler advise {args.policy} at {tick.at:%Y-%m-%d %H:%M} UTC"))
    return EXIT_FAILED if tick.errors else EXIT_OK


commands.register("advise")(("one dry-run tick: read AWS, print diagnosis and advice", _add))
