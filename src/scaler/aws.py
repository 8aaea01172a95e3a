"""Boto3 clients, made in one place and passed in; nothing deeper creates a client."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from botocore.parsers import ResponseParserError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from scaler.errors import AwsCallError, RetryableAwsError

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

__all__ = [
    "DEFAULT_RETRY",
    "ENDPOINT_ENV",
    "THROTTLING_CODES",
    "Clients",
    "RetryPolicy",
    "call_aws",
    "error_code",
    "is_retryable",
    "make_clients",
    "name_groups",
]

T = TypeVar("T")
log = structlog.get_logger(__name__)

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
    sns: SNSClient  # `scaler enrich`: enriched alarms republished to a topic
    ssm: SSMClient  # `scaler enrich`: destination secrets kept as SecureString parameters


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
        sns=session.client("sns", endpoint_url=endpoint, region_name=region, config=cfg),
        ssm=session.client("ssm", endpoint_url=endpoint, region_name=region, config=cfg),
    )


# Error codes AWS services use for throttling (botocore's standard list, minus quota errors such
# as LimitExceededException, which waiting does not cure).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by total time."""

    max_attempts: int = 5
    max_total_s: float = 20.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0


DEFAULT_RETRY = RetryPolicy()


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ClientError, or None for anything else."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or None
    return None


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx, connection errors and timeouts: the failures that waiting can cure."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in THROTTLING_CODES or int(status) >= 500
    # ReadTimeoutError and ConnectionClosedError are HTTPClientErrors; the rest ConnectionErrors.
    return isinstance(exc, ConnectionError | HTTPClientError)


def name_groups(groups: Iterable[str], *, limit: int = 3) -> str:
    """'group a', or 'groups a, b, c and 7 more', for error messages about batched calls."""
    names = list(groups)
    if len(names) == 1:
        return f"group {names[0]!r}"
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"groups {shown}{more}"


def call_aws(
    op_name: str,
    groups: str | Iterable[str],
    fn: Callable[..., T],
    /,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    **kwargs: Any,
) -> T:
    """Call `fn(**kwargs)`, retrying throttling and 5xx only; failures name the call and groups.

    Raises RetryableAwsError when retries ran out on a retryable failure, AwsCallError at once
    on anything else (access denied, validation, not found).
    """
    who = name_groups([groups] if isinstance(groups, str) else groups)
    retrying = Retrying(
        # stop_before_delay: a backoff that would end past the budget is not slept at all.
        stop=stop_after_attempt(retry.max_attempts) | stop_before_delay(retry.max_total_s),
        wait=wait_random_exponential(multiplier=retry.initial_backoff_s, max=retry.max_backoff_s),
        retry=retry_if_exception(is_retryable),
        before_sleep=_log_retry(op_name, who),
        reraise=True,
    )
    try:
        return retrying(fn, **kwargs)
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        attempts = int(retrying.statistics.get("attempt_number", 1))
        raise _as_error(op_name, who, exc, attempts) from exc


def _log_retry(op_name: str, who: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "aws_call_retry",
            call=op_name,
            target=who,
            attempt=state.attempt_number,
            error=error_code(exc) if exc else None,
            sleep_s=round(state.next_action.sleep, 3) if state.next_action else None,
        )

    return before_sleep


def _as_error(op_name: str, who: str, exc: BaseException, attempts: int) -> AwsCallError:
    code = error_code(exc)
    detail = f"{code}: {_message(exc)}" if code else f"{type(exc).__name__}: {exc}"
    if is_retryable(exc):
        return RetryableAwsError(
            f"{op_name} for {who} still failing after {attempts} attempt(s): {detail}"
        )
    hint = " (check the IAM policy grants it)" if code and "AccessDenied" in code else ""
    return AwsCallError(f"{op_name} for {who} failed: {detail}{hint}")


def _message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)
