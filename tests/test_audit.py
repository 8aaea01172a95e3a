"""Audit records: tick ids, dangling intents, write order around the AWS call, error sorting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from pydantic import ValidationError

from scaler.aws import Clients, classify_aws_error, outcome_unknown
from scaler.control import (
    Actuator,
    AuditRecord,
    AwsCall,
    GroupHistory,
    RailSettings,
    SqliteStateStore,
    apply_rails,
    dangling_intents,
    make_tick_id,
)
from scaler.errors import AwsCallError, RetryableAwsError
from scaler.models import GroupState

NOW = datetime(2026, 3, 1, 12, 0, 7, 250000, tzinfo=UTC)


def rec(tick: str, phase: str, group: str = "workers") -> AuditRecord:
    """A minimal audit record."""
    return AuditRecord.model_validate(
        {"tick_id": tick, "group": group, "at": NOW, "mode": "apply", "phase": phase}
    )


def test_tick_id_is_stable_within_a_minute() -> None:
    """Re-running a tick in the same minute gives the same id; the next minute a new one."""
    assert (
        make_tick_id(NOW)
        == make_tick_id(NOW + timedelta(seconds=40))
        == ("tick-2026-03-01T12:00:00Z")
    )
    assert make_tick_id(NOW + timedelta(minutes=1)) != make_tick_id(NOW)
    assert make_tick_id(NOW, prefix="lambda").startswith("lambda-")


def test_dangling_intents_are_intents_without_outcomes() -> None:
    """Only an intent whose (tick, group) has no outcome is dangling."""
    records = [
        rec("t1", "intent"),
        rec("t1", "outcome"),
        rec("t2", "intent"),
        rec("t2", "outcome", group="other"),
        rec("t3", "outcome"),
    ]
    assert [(r.tick_id, r.group) for r in dangling_intents(records)] == [("t2", "workers")]


def test_audit_record_round_trips_through_json() -> None:
    """Evidence, call and sub-second UTC times survive serialization exactly."""
    record = AuditRecord(
        tick_id="t1",
        group="workers",
        at=NOW,
        mode="apply",
        phase="outcome",
        proposal=7,
        current=4,
        target=6,
        evidence={"backlog": 1200.0, "signals": ["cpu", "queue"]},
        rails=["max_step"],
        call=AwsCall(
            service="autoscaling",
            operation="SetDesiredCapacity",
            params={
                "AutoScalingGroupName": "workers",
                "DesiredCapacity": 6,
                "HonorCooldown": False,
            },
        ),
        result="applied",
    )
    assert AuditRecord.model_validate_json(record.model_dump_json()) == record


def test_audit_record_needs_an_aware_time() -> None:
    """A naive time would be ambiguous in the log; it is refused."""
    with pytest.raises(ValidationError):
        AuditRecord(tick_id="t", group="g", at=datetime(2026, 1, 1), mode="apply", phase="intent")


def test_intent_is_written_before_the_call_and_outcome_after(
    clients: Clients, tmp_path: Path
) -> None:
    """At the moment SetDesiredCapacity leaves, the log holds the intent and no outcome."""
    clients.ec2.create_launch_template(
        LaunchTemplateName="lt-audit", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )
    clients.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="workers",
        LaunchTemplate={"LaunchTemplateName": "lt-audit"},
        MinSize=0,
        MaxSize=5,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
    )
    store = SqliteStateStore(tmp_path / "s.db")
    seen: list[list[str]] = []

    def look(**_: Any) -> None:
        seen.append([r.phase for r in store.audit("workers")])

    clients.autoscaling.meta.events.register("before-send.auto-scaling.SetDesiredCapacity", look)
    group = GroupState(name="workers", desired=1, min_size=0, max_size=5, in_service=1)
    decision = apply_rails(
        2,
        group,
        GroupHistory(group="workers"),
        RailSettings(),
        now=NOW,
        data_complete=True,
        kill_switch_env=False,
    )
    Actuator(clients.autoscaling, store, dry_run=False).act(group, decision, tick_id="t", now=NOW)
    assert seen == [["intent"]]
    assert [r.phase for r in store.audit("workers")] == ["intent", "outcome"]


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "SetDesiredCapacity",
    )


@pytest.mark.parametrize(
    ("exc", "kind", "unknown"),
    [
        (_client_error("Throttling", 400), RetryableAwsError, False),
        (_client_error("ScalingActivityInProgress", 400), RetryableAwsError, False),
        (_client_error("InternalFailure", 500), RetryableAwsError, True),
        (_client_error("SomethingNew", 503), RetryableAwsError, True),
        (ReadTimeoutError(endpoint_url="https://autoscaling"), RetryableAwsError, True),
        (EndpointConnectionError(endpoint_url="https://autoscaling"), RetryableAwsError, False),
        (_client_error("AccessDenied", 403), AwsCallError, False),
        (_client_error("ValidationError", 400), AwsCallError, False),
    ],
)
def test_aws_errors_are_sorted_into_retryable_and_permanent(
    exc: Exception, kind: type[AwsCallError], unknown: bool
) -> None:
    """Throttling, 5xx and network faults retry; refusals do not; only no-answer is 'unknown'."""
    error = classify_aws_error(exc, operation="SetDesiredCapacity")
    assert type(error) is kind
    assert str(error).startswith("SetDesiredCapacity:")
    assert outcome_unknown(exc) is unknown


def test_summary_names_change_call_rails_and_error() -> None:
    """The one-line form shows what `scaler history` needs to answer 'what did it do and why'."""
    record = AuditRecord(
        tick_id="t9",
        group="workers",
        at=NOW,
        mode="apply",
        phase="outcome",
        proposal=9,
        current=4,
        target=6,
        rails=["max_step"],
        call=AwsCall(
            service="autoscaling",
            operation="SetDesiredCapacity",
            params={
                "AutoScalingGroupName": "workers",
                "DesiredCapacity": 6,
                "HonorCooldown": False,
            },
        ),
        result="failed",
        error="SetDesiredCapacity: Throttling: Rate exceeded",
    )
    line = record.summary()
    for part in (
        "2026-03-01T12:00:07Z",
        "t9",
        "outcome:failed",
        "4->6",
        "SetDesiredCapacity(AutoScalingGroupName=workers, DesiredCapacity=6",
        "held by max_step",
        "error: SetDesiredCapacity: Throttling",
    ):
        assert part in line
