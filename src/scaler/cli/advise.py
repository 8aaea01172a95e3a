"""`scaler advise --policy FILE`: one dry-run tick over every group of a policy, from AWS."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime

import boto3

from scaler.aws import Clients, make_clients
from scaler.cli import EXIT_FAILED, EXIT_OK, commands
from scaler.live import TickAdvice, advise
from scaler.policy import load_policy
from scaler.render import render_json, render_text

__all__ = ["add_aws_arguments", "clients_from", "render_tick"]


def add_aws_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that say where AWS is; everything else comes from the normal boto3 chain."""
    parser.add_argument("--profile", help="AWS profile (default: the boto3 chain)")
    parser.add_argument("--region", help="AWS region (default: the boto3 chain, else us-east-1)")
    parser.add_argument(
        "--endpoint-url",
        help="any AWS-compatible endpoint for every service (or set SCALER_ENDPOINT_URL)",
    )


def clients_from(args: argparse.Namespace) -> Clients:
    """The one place the command line makes its boto3 clients."""
    session = boto3.Session(profile_name=args.profile) if args.profile else boto3.Session()
    return make_clients(session, endpoint_url=args.endpoint_url, region_name=args.region)


def render_tick(tick: TickAdvice, title: str) -> str:
    """A tick for people: each group's state and data age, then findings and advice."""
    lines = [title]
    for group in tick.groups:
        lines.append(f"  {group.headline()}")
        lines += [f"    note: {note}" for note in group.notes]
    lines.append(
        f"  CloudWatch: {tick.metric_queries} queries in {tick.metric_calls} GetMetricData call(s)"
    )
    return render_text(tick.advice(), "\n".join(lines))


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--policy", required=True, help="policy YAML naming the groups")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    add_aws_arguments(parser)
    return _run


def _run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    tick = advise(policy, clients_from(args), now=datetime.now(UTC))
    if args.format == "json":
        print(render_json(tick.advice()))
    else:
        print(render_tick(tick, f"scaler advise {args.policy} at {tick.at:%Y-%m-%d %H:%M} UTC"))
    return EXIT_FAILED if tick.errors else EXIT_OK


commands.register("advise")(("one dry-run tick: read AWS, print diagnosis and advice", _add))
