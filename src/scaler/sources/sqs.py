"""SQS source: each queue's depth now, from GetQueueAttributes (current values, no delay).

Called by the live tick (`scaler.live.advise`) to decide, between full CloudWatch reads,
whether a queue says trouble. SQS bills per request (one a queue a tick), where CloudWatch
bills per metric requested (17 a group a read), so this is the cheap look. A queue name is
turned into its URL once per SQS client (GetQueueUrl) and remembered while the client lives.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from scaler.aws import DEFAULT_RETRY, RetryPolicy, call_aws
from scaler.errors import AwsCallError, RetryableAwsError
from scaler.models import GroupError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = ["PARALLEL_REQUESTS", "QUEUE_ATTRIBUTES", "QueueDepth", "read_queue_depths"]

#: GetQueueAttributes requests in flight at once (SQS has no batch form of the call).
PARALLEL_REQUESTS = 16

#: What one GetQueueAttributes call asks for: messages waiting, being worked on, and delayed.
QUEUE_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)

# Per SQS client (one account and region): queue name -> URL.
_URLS: weakref.WeakKeyDictionary[object, dict[str, str]] = weakref.WeakKeyDictionary()


class QueueDepth(BaseModel):
    """A queue's messages as SQS counts them now (approximate, as SQS says)."""

    model_config = ConfigDict(frozen=True)

    visible: int
    in_flight: int
    delayed: int

    @property
    def waiting(self) -> int:
        """Messages not yet picked up: visible and delayed."""
        return self.visible + self.delayed


def read_queue_depths(
    sqs: SQSClient,
    queues: Sequence[str],
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    workers: int = PARALLEL_REQUESTS,
) -> dict[str, QueueDepth | GroupError]:
    """Each queue's depth (keyed as given: a name or a URL), or an error saying why not.

    SQS has no batch read of attributes, so a request a queue; they run `workers` at a time
    (boto3 clients are safe to share between threads), so thousands fit in a minute's tick.
    """
    urls = _URLS.setdefault(sqs, {})
    unique = list(dict.fromkeys(queues))

    def one(queue: str) -> QueueDepth | GroupError:
        try:
            if queue not in urls:
                urls[queue] = _url(sqs, queue, retry)
            answer = call_aws(
                "sqs:GetQueueAttributes",
                queue,
                sqs.get_queue_attributes,
                retry=retry,
                expect="Attributes",
                QueueUrl=urls[queue],
                AttributeNames=list(QUEUE_ATTRIBUTES),
            )
            attributes = answer["Attributes"]
            return QueueDepth(
                visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
                in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
            )
        except AwsCallError as exc:
            return GroupError(
                group=queue, error=str(exc), retryable=isinstance(exc, RetryableAwsError)
            )

    if len(unique) <= 1 or workers <= 1:
        return {queue: one(queue) for queue in unique}
    with ThreadPoolExecutor(max_workers=min(workers, len(unique))) as pool:
        return dict(zip(unique, pool.map(one, unique), strict=True))


def _url(sqs: SQSClient, queue: str, retry: RetryPolicy) -> str:
    if queue.startswith(("https://", "http://")):
        return queue
    answer = call_aws(
        "sqs:GetQueueUrl", queue, sqs.get_queue_url, retry=retry, expect="QueueUrl", QueueName=queue
    )
    return str(answer["QueueUrl"])
