"""Test helpers: count AWS calls and inject faults with botocore event hooks (no network mocks)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

__all__ = [
    "FAULTS",
    "MUTATING_AUTOSCALING",
    "CallCounter",
    "Crash",
    "answer_instance_refresh",
    "crash_after",
    "inject_fault",
]

# Every Auto Scaling operation that changes a group; dry-run must never reach any of them.
MUTATING_AUTOSCALING = frozenset(
    {
        "AttachInstances",
        "CancelInstanceRefresh",
        "CreateAutoScalingGroup",
        "DeleteAutoScalingGroup",
        "DetachInstances",
        "EnterStandby",
        "ExecutePolicy",
        "ExitStandby",
        "PutScalingPolicy",
        "PutScheduledUpdateGroupAction",
        "ResumeProcesses",
        "SetDesiredCapacity",
        "SetInstanceHealth",
        "SetInstanceProtection",
        "StartInstanceRefresh",
        "SuspendProcesses",
        "TerminateInstanceInAutoScalingGroup",
        "UpdateAutoScalingGroup",
    }
)

FAULTS = ("throttling", "server_error", "read_timeout", "access_denied")

_QUERY_ERRORS = {
    "throttling": (400, "Throttling", "Rate exceeded"),
    "server_error": (500, "InternalFailure", "An internal error occurred"),
    "access_denied": (
        403,
        "AccessDenied",
        "User is not authorized to perform: autoscaling:SetDesiredCapacity",
    ),
}
_JSON_ERRORS = {
    "throttling": (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput"),
    "server_error": (500, "InternalServerError", "Internal server error"),
    "access_denied": (400, "AccessDeniedException", "User is not authorized to perform"),
}


class Crash(BaseException):
    """A process dying mid-tick: not an Exception, so nothing in scaler may swallow it."""


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class CallCounter:
    """Every operation a client sends, in order, seen by a before-call hook."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{service}", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    @property
    def mutating(self) -> list[str]:
        """The calls that change an Auto Scaling group."""
        return [c for c in self.calls if c in MUTATING_AUTOSCALING]

    def count(self, operation: str) -> int:
        """How many times `operation` was sent."""
        return self.calls.count(operation)


def inject_fault(client: Any, operation: str, fault: str) -> Callable[[], None]:
    """Make every `operation` call on `client` fail with `fault`; returns a function to stop it."""
    service = client.meta.service_model.service_id.hyphenize()
    protocol = client.meta.service_model.protocol

    def _respond(request: Any, **_: Any) -> AWSResponse:
        if fault == "read_timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if protocol == "ec2":
            status, code, message = _QUERY_ERRORS[fault]
            body = (
                f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
                "</Error></Errors><RequestID>injected</RequestID></Response>"
            ).encode()
            headers = {"Content-Type": "text/xml"}
        elif protocol == "query":
            status, code, message = _QUERY_ERRORS[fault]
            body = (
                "<ErrorResponse><Error><Type>Sender</Type>"
                f"<Code>{code}</Code><Message>{message}</Message></Error>"
                "<RequestId>injected</RequestId></ErrorResponse>"
            ).encode()
            headers = {"Content-Type": "text/xml"}
        else:
            status, code, message = _JSON_ERRORS[fault]
            body = json.dumps({"__type": code, "message": message}).encode()
            headers = {"Content-Type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, status, headers, _Raw(body))

    event = f"before-send.{service}.{operation}"
    client.meta.events.register(event, _respond)
    return lambda: client.meta.events.unregister(event, _respond)


def answer_instance_refresh(client: Any, refresh_id: str = "refresh-1") -> list[dict[str, Any]]:
    """Answer StartInstanceRefresh (moto's server lacks it) and keep each request's parameters.

    A before-call hook sees the parameters as botocore serializes them; a before-send hook
    answers, so every other call on the client still goes to the moto server.
    """
    seen: list[dict[str, Any]] = []
    events = client.meta.events

    def keep(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)

    def answer(request: Any, **_: Any) -> AWSResponse:
        body = (
            "<StartInstanceRefreshResponse><StartInstanceRefreshResult>"
            f"<InstanceRefreshId>{refresh_id}</InstanceRefreshId>"
            "</StartInstanceRefreshResult><ResponseMetadata><RequestId>stub</RequestId>"
            "</ResponseMetadata></StartInstanceRefreshResponse>"
        ).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "text/xml"}, _Raw(body))

    events.register("before-parameter-build.auto-scaling.StartInstanceRefresh", keep)
    events.register("before-send.auto-scaling.StartInstanceRefresh", answer)
    return seen


def crash_after(client: Any, operation: str) -> Callable[[], None]:
    """Kill the 'process' right after AWS answered `operation`; returns a function to stop it."""
    service = client.meta.service_model.service_id.hyphenize()
    event = f"after-call.{service}.{operation}"

    def _crash(**_: Any) -> None:
        raise Crash(operation)

    client.meta.events.register(event, _crash)
    return lambda: client.meta.events.unregister(event, _crash)
