"""Boto3 clients, made in one place and passed in; and THE vocabulary of AWS failures.

`make_clients` makes the clients of scaler's own credentials; `Clients.at` those of another
region, or of another account through a role assumed with STS (many accounts and regions).

Every caller of AWS (sources, actuators, the state store, the catalog refresh) sorts failures
here: `is_retryable` (what waiting can cure), `classify_aws_error` (scaler's error type for a
failure) and `outcome_unknown` (whether a failed call may still have run).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from scaler.errors import AwsCallError, RetryableAwsError, ScalerError
from scaler.logs import get_logger

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

__all__ = [
    "AWS_CALL_ERRORS",
    "DEFAULT_RETRY",
    "ENDPOINT_ENV",
    "RENEW_ROLE_BEFORE",
    "RETRYABLE_CODES",
    "ROLE_SESSION_NAME",
    "Clients",
    "RetryPolicy",
    "call_aws",
    "classify_aws_error",
    "error_code",
    "is_retryable",
    "make_clients",
    "name_groups",
    "outcome_unknown",
    "read_answer",
    "retrying",
]

T = TypeVar("T")
log = get_logger(__name__)

ENDPOINT_ENV = "SCALER_ENDPOINT_URL"

# Retries are ours (tenacity, on listed errors only), so botocore makes one attempt.
_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
)


#: The session name of every role scaler assumes: the target account's CloudTrail names scaler.
ROLE_SESSION_NAME = "scaler"
#: Assumed credentials last an hour; they are assumed again when less than this is left, so
#: no call of a tick runs on credentials about to end.
RENEW_ROLE_BEFORE = timedelta(minutes=15)


@dataclass(frozen=True)
class _Origin:
    """What clients are made from: a session (its credentials), an endpoint, a region."""

    session: boto3.Session
    endpoint: str | None
    region: str
    config: Config

    def clients(self) -> Clients:
        return Clients(self.make, origin=self)

    def make(self, service: str) -> Any:
        config = self.config
        if service == "cloudwatch":
            # GetMetricData's queries are built by one function (tested against the API's own
            # model on the moto server); botocore re-checking 500 queries against the model on
            # every call was about a tenth of a large tick's CPU. AWS still validates them.
            config = config.merge(Config(parameter_validation=False))
        return self.session.client(  # type: ignore[call-overload]
            service, endpoint_url=self.endpoint, region_name=self.region, config=config
        )


class Clients:
    """The AWS clients scaler uses, all from one session and endpoint, each made on first use.

    Making a client loads its service's model (tens of milliseconds each); a tick that never
    calls SQS, or a dry-run that never writes, does not pay for those clients.
    """

    #: Every service scaler may call, by the attribute that holds its client.
    SERVICES = ("autoscaling", "cloudwatch", "sqs", "ec2", "dynamodb", "sns", "ssm", "sts")

    def __init__(self, make: Callable[[str], Any], *, origin: _Origin | None = None) -> None:
        self._make = make
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()  # boto3 does not make clients safely from two threads
        self._origin = origin
        # (region, role ARN) -> the clients there, and when their credentials end (None: never).
        self._elsewhere: dict[tuple[str, str | None], tuple[Clients, datetime | None]] = {}
        self._elsewhere_lock = threading.Lock()

    def at(self, *, region: str | None = None, role_arn: str | None = None) -> Clients:
        """Clients in `region` (None: these clients' region) as `role_arn` (None: with these
        clients' own credentials), made once and kept, so a `--every` loop or a warm Lambda
        keeps what it learned per account (launch template types, the cost gate's reads).

        The role is assumed through these clients' STS (session name `scaler`), and assumed
        again when its credentials near their end. Raises AwsCallError (RetryableAwsError for
        throttling and 5xx) naming the role when AWS refuses to let scaler assume it.
        """
        if role_arn is None and region is None:
            return self
        if self._origin is None:
            raise ScalerError("these clients were not made by make_clients: no other place")
        here = self._origin
        region = region or here.region
        if region == here.region and role_arn is None:
            return self
        key = (region, role_arn)
        with self._elsewhere_lock:
            made, ends = self._elsewhere.get(key, (None, None))
            # Credentials end in real time, whatever clock a tick runs on.
            if made is not None and (ends is None or datetime.now(UTC) < ends - RENEW_ROLE_BEFORE):
                return made
            session, ends = (
                (here.session, None) if role_arn is None else self._assume(role_arn, region)
            )
            made = _Origin(session, here.endpoint, region, here.config).clients()
            self._elsewhere[key] = (made, ends)
            return made

    def _assume(self, role_arn: str, region: str) -> tuple[boto3.Session, datetime]:
        try:
            answer = call_aws(
                "sts:AssumeRole",
                [role_arn],
                self.sts.assume_role,
                expect="Credentials",
                RoleArn=role_arn,
                RoleSessionName=ROLE_SESSION_NAME,
            )
        except AwsCallError as exc:
            failure = classify_aws_error(exc.__cause__ or exc, operation="sts:AssumeRole")
            raise type(failure)(
                f"cannot assume role {role_arn} ({failure}): its trust policy must name the "
                "role scaler runs as, and that role needs sts:AssumeRole on it"
            ) from exc
        credentials = answer["Credentials"]
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=region,
        )
        return session, credentials["Expiration"]

    def _client(self, service: str) -> Any:
        with self._lock:
            if service not in self._made:
                self._made[service] = self._make(service)
            return self._made[service]

    @property
    def made(self) -> tuple[str, ...]:
        """The services whose clients exist so far, in the order they were made."""
        return tuple(self._made)

    @property
    def autoscaling(self) -> AutoScalingClient:
        """Auto Scaling: group state, and the capacity changes of apply mode."""
        return cast("AutoScalingClient", self._client("autoscaling"))

    @property
    def cloudwatch(self) -> CloudWatchClient:
        """CloudWatch: every signal's metrics."""
        return cast("CloudWatchClient", self._client("cloudwatch"))

    @property
    def sqs(self) -> SQSClient:
        """SQS: the queue's current depth (GetQueueAttributes), the fan-out's shard messages
        (SendMessage), and the local demo's queues."""
        return cast("SQSClient", self._client("sqs"))

    @property
    def ec2(self) -> EC2Client:
        """EC2: launch template versions (instance types)."""
        return cast("EC2Client", self._client("ec2"))

    @property
    def dynamodb(self) -> DynamoDBClient:
        """DynamoDB: the shared state table, where the policy uses one."""
        return cast("DynamoDBClient", self._client("dynamodb"))

    @property
    def sns(self) -> SNSClient:
        """SNS: `scaler enrich` republishes enriched alarms to a topic."""
        return cast("SNSClient", self._client("sns"))

    @property
    def ssm(self) -> SSMClient:
        """SSM: `scaler enrich`'s destination secrets, kept as SecureString parameters."""
        return cast("SSMClient", self._client("ssm"))

    @property
    def sts(self) -> STSClient:
        """STS: the roles assumed in other accounts (`at`)."""
        return cast("STSClient", self._client("sts"))


def make_clients(
    boto3_session: boto3.Session | None = None,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    config: Config | None = None,
) -> Clients:
    """Clients from the boto3 chain; `endpoint_url` (or SCALER_ENDPOINT_URL) redirects all.

    The session, endpoint and region are settled here, now; each client is made when first used.
    """
    session = boto3_session or boto3.Session()
    endpoint = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
    region = region_name or session.region_name or "us-east-1"
    cfg = _CONFIG.merge(config) if config else _CONFIG
    return _Origin(session, endpoint, region, cfg).clients()


# THE list of error codes worth waiting for: throttling (botocore's standard list, minus quota
# errors such as LimitExceededException, which waiting does not cure), transient server faults,
# and Auto Scaling's own "busy, try later". Everything else is permanent.
RETRYABLE_CODES = frozenset(
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
        "ServiceUnavailable",
        "Unavailable",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "ScalingActivityInProgress",
        "ResourceContention",
    }
)

#: What a boto3 call can raise; ResponseParserError (an unreadable answer, such as an HTML
#: error page or a truncated body) is neither a ClientError nor a BotoCoreError.
AWS_CALL_ERRORS = (ClientError, BotoCoreError, ResponseParserError)


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


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx, network faults, timeouts and unreadable answers: what waiting can cure."""
    if isinstance(exc, ClientError):
        return error_code(exc) in RETRYABLE_CODES or _status(exc) >= 500
    # ReadTimeoutError and ConnectionClosedError are HTTPClientErrors; the rest ConnectionErrors.
    return isinstance(exc, ConnectionError | HTTPClientError | ResponseParserError)


def outcome_unknown(exc: BaseException) -> bool:
    """True when a request may have reached AWS and run: no answer, or a 5xx mid-flight."""
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError | ResponseParserError):
        return True
    return isinstance(exc, ClientError) and _status(exc) >= 500


def classify_aws_error(exc: BaseException, *, operation: str) -> AwsCallError:
    """The scaler error for one failed call: RetryableAwsError exactly when `is_retryable`."""
    if isinstance(exc, ClientError):
        message = str(exc.response.get("Error", {}).get("Message", "")).strip()
        text = f"{operation}: {error_code(exc) or 'Unknown'}" + (f": {message}" if message else "")
    elif isinstance(exc, ResponseParserError):
        text = f"{operation}: unreadable answer from AWS: {exc}"
    else:
        text = f"{operation}: {type(exc).__name__}: {exc}"
    return RetryableAwsError(text) if is_retryable(exc) else AwsCallError(text)


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
    expect: str | None = None,
    **kwargs: Any,
) -> T:
    """Call `fn(**kwargs)`, retrying throttling and 5xx only; failures name the call and groups.

    `expect` names the key every good answer has (an empty list is still there): an answer
    without it (an HTML page that happened to parse, a truncated body) is unreadable, never
    an empty result. Raises RetryableAwsError when retries ran out on a retryable failure,
    AwsCallError at once on anything else (access denied, validation, not found).
    """
    who = name_groups([groups] if isinstance(groups, str) else groups)
    attempt = retrying(retry, op_name, who)

    def checked(**call_kwargs: Any) -> T:
        answer = read_answer(fn, **call_kwargs)
        if expect is not None and (not isinstance(answer, dict) or expect not in answer):
            raise ResponseParserError(f"the answer has no {expect}: unreadable")
        return answer

    try:
        return attempt(checked, **kwargs)
    except AWS_CALL_ERRORS as exc:
        attempts = int(attempt.statistics.get("attempt_number", 1))
        raise _as_error(op_name, who, exc, attempts) from exc


def read_answer(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """`fn(**kwargs)` for a boto3 method, with the answers botocore lets through sorted:
    its parser can fail on a malformed answer (a well-formed HTML page) with a bare KeyError or
    TypeError, and a JSON client can read a web page as an empty answer; both become
    ResponseParserError, an unreadable answer, like any other."""
    try:
        answer = fn(**kwargs)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ResponseParserError(f"unreadable answer ({type(exc).__name__}: {exc})") from exc
    # A JSON-protocol client (DynamoDB) reads any body it cannot parse as an empty answer, which
    # would look like "no items": an answer AWS did not write is unreadable, never empty.
    meta = answer.get("ResponseMetadata", {}) if isinstance(answer, dict) else {}
    content_type = str(meta.get("HTTPHeaders", {}).get("content-type", ""))
    if "html" in content_type.lower():
        raise ResponseParserError(f"the answer is a web page ({content_type}), not from AWS")
    return answer


def retrying(retry: RetryPolicy, op_name: str, who: str) -> Retrying:
    """The retry loop every AWS caller uses: retryable failures only, within `retry`'s budget."""
    return Retrying(
        # stop_before_delay: a backoff that would end past the budget is not slept at all.
        stop=stop_after_attempt(retry.max_attempts) | stop_before_delay(retry.max_total_s),
        wait=wait_random_exponential(multiplier=retry.initial_backoff_s, max=retry.max_backoff_s),
        retry=retry_if_exception(is_retryable),
        before_sleep=_log_retry(op_name, who),
        reraise=True,
    )


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
