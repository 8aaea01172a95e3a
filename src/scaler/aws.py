"""Boto3 clients, made in one place and passed in; nothing deeper creates a client."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_sqs import SQSClient

__all__ = ["ENDPOINT_ENV", "Clients", "make_clients"]

ENDPOINT_ENV = "SCALER_ENDPOINT_URL"

# Retries are ours (tenacity, on listed errors only), so botocore makes one attempt.
_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
)


@dataclass(frozen=True)
class Clients:
    """The AWS clients scaler uses, all from one session and endpoint."""

    autoscaling: AutoScalingClient
    cloudwatch: CloudWatchClient
    sqs: SQSClient
    ec2: EC2Client
    dynamodb: DynamoDBClient


def make_clients(
    boto3_session: boto3.Session | None = None,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    config: Config | None = None,
) -> Clients:
    """Clients from the boto3 chain; `endpoint_url` (or SCALER_ENDPOINT_URL) redirects all."""
    session = boto3_session or boto3.Session()
    endpoint = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
    region = region_name or session.region_name or "us-east-1"
    cfg = _CONFIG.merge(config) if config else _CONFIG

    return Clients(
        autoscaling=session.client(
            "autoscaling", endpoint_url=endpoint, region_name=region, config=cfg
        ),
        cloudwatch=session.client(
            "cloudwatch", endpoint_url=endpoint, region_name=region, config=cfg
        ),
        sqs=session.client("sqs", endpoint_url=endpoint, region_name=region, config=cfg),
        ec2=session.client("ec2", endpoint_url=endpoint, region_name=region, config=cfg),
        dynamodb=session.client("dynamodb", endpoint_url=endpoint, region_name=region, config=cfg),
    )
