"""Retry policy: throttling and 5xx are retried with backoff, everything else fails fast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError
from structlog.testing import capture_logs

from scaler.aws import Clients, RetryPolicy, call_aws, is_retryable
from scaler.errors import AwsCallError, RetryableAwsError
from scaler.sources.cloudwatch import CloudWatchSource, MetricTarget

NOW = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=4, max_total_s=5, initial_backoff_s=0.001, max_backoff_s=0.005)


def client_error(code: str, status: int = 400) -> ClientError:
    """A ClientError as botocore raises it for an AWS error response."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetMetricData",
    )


def fail_first(clients: Clients, errors: list[ClientError]) -> list[int]:
    """Make the next GetMetricData requests raise `errors` in order; returns a request counter."""
    sent: list[int] = []

    def inject(**_: Any) -> None:
        sent.append(1)
        if len(sent) <= len(errors):
            raise errors[len(sent) - 1]

    clients.cloudwatch.meta.events.register("before-call.cloudwatch.GetMetricData", inject)
    return sent


def fetch(clients: Clients, *groups: str, retry: RetryPolicy = FAST) -> Any:
    """One fetch of the last five minutes for `groups`."""
    targets = [MetricTarget.build(g) for g in groups]
    return CloudWatchSource(clients.cloudwatch, retry=retry).fetch(
        targets, start=NOW - timedelta(minutes=5), end=NOW
    )


def test_throttling_twice_is_recovered_by_retries(clients: Clients) -> None:
    """Two ThrottlingExceptions, then success: the fetch succeeds on the third request."""
    sent = fail_first(clients, [client_error("ThrottlingException")] * 2)
    with capture_logs() as logs:
        result = fetch(clients, "a", "b")
    assert len(sent) == result.calls == 3
    assert result.errors == []
    assert sorted(result.windows) == ["a", "b"]
    retries = [e for e in logs if e["event"] == "aws_call_retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert {r["error"] for r in retries} == {"ThrottlingException"}
    assert all(r["call"] == "cloudwatch:GetMetricData" for r in retries)


def test_server_errors_are_retried(clients: Clients) -> None:
    """A 503 is worth another try, like throttling."""
    sent = fail_first(clients, [client_error("ServiceUnavailable", 503)])
    result = fetch(clients, "a")
    assert len(sent) == 2
    assert result.errors == []


def test_access_denied_fails_fast_for_every_group_in_the_call(clients: Clients) -> None:
    """AccessDenied is not retried; each group gets an error naming the call and the group."""
    sent = fail_first(clients, [client_error("AccessDenied", 403)] * 10)
    result = fetch(clients, "a", "b")
    assert len(sent) == 1
    assert result.windows == {}
    assert [e.group for e in result.errors] == ["a", "b"]
    message = result.errors[0].error
    assert "cloudwatch:GetMetricData" in message
    assert "'a'" in message
    assert "AccessDenied" in message
    assert "IAM" in message
    assert not result.errors[0].retryable


def test_retries_stop_after_max_attempts(clients: Clients) -> None:
    """Throttled on every try: exactly max_attempts requests, then a retryable group error."""
    sent = fail_first(clients, [client_error("Throttling")] * 10)
    result = fetch(clients, "a")
    assert len(sent) == FAST.max_attempts
    assert result.errors[0].retryable
    assert f"after {FAST.max_attempts} attempt(s)" in result.errors[0].error


def test_retries_stop_at_the_total_time_bound() -> None:
    """No backoff is slept that would end past the total-time budget, however many attempts."""
    attempts: list[int] = []

    def throttled() -> None:
        attempts.append(1)
        raise client_error("RequestLimitExceeded")

    policy = RetryPolicy(
        max_attempts=50, max_total_s=0.05, initial_backoff_s=0.2, max_backoff_s=0.2
    )
    with (
        capture_logs() as logs,
        pytest.raises(RetryableAwsError, match="ec2:DescribeThings for group 'g'"),
    ):
        call_aws("ec2:DescribeThings", "g", throttled, retry=policy)
    slept = [e["sleep_s"] for e in logs if e["event"] == "aws_call_retry"]
    assert len(attempts) == len(slept) + 1 < 50
    assert sum(slept) <= policy.max_total_s


def test_call_aws_names_the_call_and_every_group() -> None:
    """Permanent errors become AwsCallError naming the call and the groups, not retried."""
    attempts: list[int] = []

    def denied(**kwargs: Any) -> None:
        attempts.append(1)
        raise client_error("ValidationError")

    with pytest.raises(
        AwsCallError, match=r"x:Op for groups 'a', 'b', 'c' and 2 more failed"
    ) as info:
        call_aws("x:Op", ["a", "b", "c", "d", "e"], denied, retry=FAST, Param=1)
    assert not isinstance(info.value, RetryableAwsError)
    assert len(attempts) == 1


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (client_error("Throttling"), True),
        (client_error("ThrottlingException"), True),
        (client_error("RequestLimitExceeded"), True),
        (client_error("TooManyRequestsException"), True),
        (client_error("InternalFailure", 500), True),
        (client_error("AccessDenied", 403), False),
        (client_error("ValidationError"), False),
        (client_error("LimitExceededException"), False),  # a quota: waiting does not help
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ParamValidationError(report="bad"), False),
        (ValueError("not AWS"), False),
    ],
)
def test_is_retryable_lists_throttling_and_5xx_only(exc: BaseException, retry: bool) -> None:
    """Only failures that waiting can cure are retried."""
    assert is_retryable(exc) is retry
