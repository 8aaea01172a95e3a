"""What every AWS-facing command shares: the flags that say where AWS is, and its clients.

Called by the command modules (`advise`, `run`, `history`, `enrich`, ...); the one place the
command line turns `--profile`, `--region` and `--endpoint-url` into boto3 clients, and the one
place their misuse becomes a one-line error (exit 2) instead of a botocore traceback.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ProfileNotFound

from scaler.aws import ENDPOINT_ENV, Clients, make_clients
from scaler.errors import InputError

__all__ = ["add_aws_arguments", "check_endpoint_url", "clients_from", "now"]


def add_aws_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that say where AWS is; everything else comes from the normal boto3 chain."""
    parser.add_argument("--profile", help="AWS profile (default: the boto3 chain)")
    parser.add_argument("--region", help="AWS region (default: the boto3 chain, else us-east-1)")
    parser.add_argument(
        "--endpoint-url",
        help=f"any AWS-compatible endpoint for every service (or set {ENDPOINT_ENV})",
    )


def check_endpoint_url(url: str, *, source: str = "--endpoint-url") -> str:
    """`url` if it is an http(s) URL with a host; else an InputError naming `source`."""
    parts = urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(
            f"{source} {url!r} is not a URL; give one like http://localhost:5000 "
            "or https://monitoring.us-east-1.amazonaws.com"
        )
    return url


def clients_from(args: argparse.Namespace) -> Clients:
    """The one place the command line makes its boto3 clients."""
    endpoint = getattr(args, "endpoint_url", None)
    if endpoint:
        check_endpoint_url(endpoint)
    elif from_env := os.environ.get(ENDPOINT_ENV):
        check_endpoint_url(from_env, source=ENDPOINT_ENV)
    try:
        session = boto3.Session(profile_name=args.profile) if args.profile else boto3.Session()
        return make_clients(session, endpoint_url=endpoint, region_name=args.region)
    except ProfileNotFound as exc:
        raise InputError(
            f"--profile {args.profile!r}: no such profile in your AWS config "
            "(~/.aws/config, ~/.aws/credentials); list them with `aws configure list-profiles`"
        ) from exc
    except (BotoCoreError, ValueError) as exc:
        # A bad region name or an endpoint botocore refuses (set in the environment).
        raise InputError(f"cannot make AWS clients: {exc}") from exc


def now(args: argparse.Namespace) -> datetime:
    """The command's clock (`main(clock=...)`; tests pass a fixed one instead of patching)."""
    clock = args.clock
    moment: datetime = clock()
    return moment
