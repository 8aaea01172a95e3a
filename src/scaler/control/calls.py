"""AWS call failures sorted into scaler's error types, and whether the call may still have run."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from scaler.errors import AwsCallError, RetryableAwsError

__all__ = ["AWS_CALL_ERRORS", "RETRYABLE_CODES", "classify_aws_error", "outcome_unknown"]

#: What a boto3 call can raise; ResponseParserError (an unreadable answer, such as an HTML
#: error page) is neither a ClientError nor a BotoCoreError.
AWS_CALL_ERRORS = (ClientError, BotoCoreError, ResponseParserError)

RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "ScalingActivityInProgress",
        "ResourceContention",
    }
)


def classify_aws_error(exc: Exception, *, operation: str) -> AwsCallError:
    """The scaler error for a boto3 failure: retryable for throttling, 5xx and network faults."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")).strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{operation}: {code}" + (f": {message}" if message else "")
        if code in RETRYABLE_CODES or status >= 500:
            return RetryableAwsError(text)
        return AwsCallError(text)
    if isinstance(exc, BotoCoreError):
        text = f"{operation}: {type(exc).__name__}: {exc}"
        if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | EndpointConnectionError):
            return RetryableAwsError(text)
        if isinstance(exc, ConnectionClosedError):
            return RetryableAwsError(text)
        return AwsCallError(text)
    if isinstance(exc, ResponseParserError):
        return RetryableAwsError(f"{operation}: unreadable answer from AWS: {exc}")
    return AwsCallError(f"{operation}: {type(exc).__name__}: {exc}")


def outcome_unknown(exc: Exception) -> bool:
    """True when the request may have reached AWS and run: no answer, or a 5xx mid-flight."""
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError | ResponseParserError):
        return True
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return status >= 500
    return False
