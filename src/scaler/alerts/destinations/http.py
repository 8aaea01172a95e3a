"""JSON over HTTP POST for webhook destinations, retried within the deadline.

A 429 waits what its Retry-After says (seconds or an HTTP date); a 5xx, a refused connection
or a timeout backs off exponentially; any other answer fails at once. Nothing is ever slept past
the deadline: a Retry-After beyond it fails with that said. Used by the PagerDuty and Slack
backends.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from scaler.alerts.destinations.base import DeliveryError, SendContext
from scaler.alerts.safe import clean

__all__ = ["post_json", "retry_after_seconds"]

_MAX_ATTEMPT_TIMEOUT_S = 10.0
_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 8.0


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or HTTP date); None if unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def post_json(url: str, body: dict[str, Any], ctx: SendContext, *, what: str) -> tuple[int, str]:
    """POST `body` as JSON; (status, answer text) of the accepted answer, or DeliveryError."""
    data = json.dumps(body).encode("utf-8")
    backoff = _FIRST_BACKOFF_S
    attempt = 0
    while True:
        attempt += 1
        remaining = ctx.remaining()
        if remaining <= 0:
            raise DeliveryError(f"{what}: no time left before the first attempt")
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        wait: float | None
        try:
            with urllib.request.urlopen(
                request, timeout=min(remaining, _MAX_ATTEMPT_TIMEOUT_S)
            ) as answer:
                return answer.status, _text(answer.read())
        except urllib.error.HTTPError as exc:
            status, text = exc.code, _text(exc.read())
            problem = f"HTTP {status}: {text}" if text else f"HTTP {status}"
            if status == 429:
                asked = retry_after_seconds(exc.headers.get("Retry-After"), now=datetime.now(UTC))
                wait = asked if asked is not None else backoff
            elif status >= 500:
                wait = backoff
            else:
                raise DeliveryError(f"{what}: refused with {problem}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = f"no answer ({clean(reason, 120)})"
            wait = backoff
        if wait > ctx.remaining():
            raise DeliveryError(
                f"{what}: still failing after {attempt} attempt(s) ({problem}); the next try "
                f"in {wait:g} s would pass the deadline"
            )
        ctx.sleep(wait)
        backoff = min(backoff * 2, _MAX_BACKOFF_S)


def _text(raw: bytes) -> str:
    return clean(raw[:600].decode("utf-8", "replace"), 200)
