"""Alarm notifications: every shape AWS delivers, garbled ones named, and enrichment end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scaler.alerts.match import group_for_alarm
from scaler.alerts.parse import parse_alarm
from scaler.aws import Clients
from scaler.cli import EXIT_BAD_INPUT, EXIT_OK, main
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.errors import InputError
from scaler.policy import GroupPolicy, Policy
from scaler.sim import scenarios

AT = datetime(2026, 3, 2, 11, 26, tzinfo=UTC)
SNS_ALARM: dict[str, Any] = {
    "AlarmName": "crash-reports-oldest-message",
    "NewStateValue": "ALARM",
    "NewStateReason": "Threshold Crossed: 5 datapoints were greater than the threshold (900.0).",
    "StateChangeTime": "2026-03-02T11:26:00.000+0000",
    "OldStateValue": "OK",
    "Trigger": {
        "MetricName": "ApproximateAgeOfOldestMessage",
        "Namespace": "AWS/SQS",
        "Dimensions": [{"value": "crash-reports", "name": "QueueName"}],
    },
}
ENVELOPE = {
    "Type": "Notification",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:paging",
    "Subject": "ALARM: crash-reports-oldest-message",
    "Message": json.dumps(SNS_ALARM),
}
LAMBDA_EVENT = {"Records": [{"EventSource": "aws:sns", "Sns": ENVELOPE}]}
EVENTBRIDGE = {
    "source": "aws.cloudwatch",
    "detail-type": "CloudWatch Alarm State Change",
    "time": "2026-03-02T11:26:00Z",
    "detail": {
        "alarmName": "crash-reports-oldest-message",
        "state": {
            "value": "ALARM",
            "reason": "Threshold Crossed",
            "timestamp": "2026-03-02T11:26:00.000+0000",
        },
        "configuration": {
            "metrics": [
                {
                    "metricStat": {
                        "metric": {
                            "namespace": "AWS/SQS",
                            "name": "ApproximateAgeOfOldestMessage",
                            "dimensions": {"QueueName": "crash-reports"},
                        }
                    }
                }
            ]
        },
    },
}
POLICY = Policy(
    groups=[
        GroupPolicy(name="thumbnails", auto_scaling_group="thumbs-asg", queue="thumbs"),
        GroupPolicy(
            name="crash-processor",
            auto_scaling_group="crash-asg",
            queue="https://sqs.us-east-1.amazonaws.com/123456789012/crash-reports",
        ),
    ]
)


@pytest.mark.parametrize("document", [SNS_ALARM, ENVELOPE, LAMBDA_EVENT, EVENTBRIDGE])
def test_every_delivery_shape_gives_the_same_alarm(document: dict[str, Any]) -> None:
    """Bare SNS alarm, SNS envelope, Lambda SNS event and EventBridge event read alike."""
    alarm = parse_alarm(json.dumps(document))
    assert alarm.name == "crash-reports-oldest-message"
    assert alarm.state == "ALARM"
    assert alarm.at == AT
    assert alarm.dimensions == {"QueueName": "crash-reports"}
    assert group_for_alarm(alarm, POLICY).name == "crash-processor"  # matched through a URL


def test_an_asg_dimension_matches_too() -> None:
    """An alarm on a group's own metric names it by AutoScalingGroupName."""
    doc = {
        **SNS_ALARM,
        "Trigger": {"Dimensions": [{"name": "AutoScalingGroupName", "value": "thumbs-asg"}]},
    }
    assert group_for_alarm(parse_alarm(json.dumps(doc)), POLICY).name == "thumbnails"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON (line 1, column 2"),
        ("[1, 2]", "is a JSON object, got a list"),
        ('{"hello": 1}', "not an alarm notification"),
        (json.dumps({**SNS_ALARM, "StateChangeTime": "yesterday"}), "'yesterday' is not a time"),
        (json.dumps({**SNS_ALARM, "NewStateValue": None}), "NewStateValue is missing"),
        (json.dumps({**SNS_ALARM, "Trigger": {"Dimensions": "QueueName"}}), "Trigger.Dimensions"),
        (json.dumps({"Records": [LAMBDA_EVENT["Records"][0]] * 2}), "carries one record"),
        (json.dumps({**ENVELOPE, "Message": "garbled"}), "Message: not JSON"),
    ],
)
def test_garbled_alarms_are_named_errors(text: str, message: str) -> None:
    """Each garbled notification is an InputError that says where and what."""
    with pytest.raises(InputError, match=r"alarm\.json") as err:
        parse_alarm(text, "alarm.json")
    assert message in str(err.value)


def test_an_alarm_for_no_group_lists_the_groups() -> None:
    """An alarm that matches no group says which dimensions it has and which groups exist."""
    doc = {**SNS_ALARM, "Trigger": {"Dimensions": [{"name": "QueueName", "value": "other"}]}}
    with pytest.raises(InputError, match=r"QueueName=other.*thumbnails.*crash-processor"):
        group_for_alarm(parse_alarm(json.dumps(doc)), POLICY)


def test_enrich_adds_the_diagnosis_to_the_alarm(
    clients: Clients, aws: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scaler enrich` on the seeded incident's page: iowait_bound named as the cause, advice."""
    incident = scenarios.incident()
    assert incident.throttle_onset is not None
    alarm_at = incident.throttle_onset + timedelta(minutes=9)
    length = int((alarm_at - incident.window.start).total_seconds() // 60) - 1
    window = incident.window.head(length).model_copy(update={"group": "crash-processor"})
    seed_local_aws(
        clients, window, asg_name="crash-asg", queue_name="crash-reports", max_size=40, now=alarm_at
    )
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "groups:\n  - name: crash-processor\n    auto_scaling_group: crash-asg\n"
        "    queue: crash-reports\n"
    )
    page = tmp_path / "alarm.json"
    stamp = alarm_at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    page.write_text(
        json.dumps({**ENVELOPE, "Message": json.dumps({**SNS_ALARM, "StateChangeTime": stamp})})
    )
    args = ["enrich", "--policy", str(policy), str(page), "--endpoint-url", aws.endpoint_url]
    assert main([*args, "--format", "json"]) == EXIT_OK
    enriched = json.loads(capsys.readouterr().out)
    assert enriched["group"] == "crash-processor"
    # The cause first, then the advice, then the symptom that paged.
    assert enriched["summary"].startswith("crash-processor: iowait_bound (also ")
    assert " × m5.xlarge now (8 running)" in enriched["summary"]
    assert "m5d.xlarge" in enriched["summary"]
    assert "Paged by ALARM crash-reports-oldest-message" in enriched["summary"]
    assert {f["kind"] for f in enriched["diagnosis"]["findings"]} >= {"iowait_bound"}
    assert main(args) == EXIT_OK
    assert "ALARM crash-reports-oldest-message at" in capsys.readouterr().out
    page.write_text("{garbled")
    assert main(args) == EXIT_BAD_INPUT
    assert "alarm.json: not JSON" in capsys.readouterr().err
