"""Alarm notifications: every shape AWS delivers, garbled ones named, and enrichment end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scaler.alerts.match import group_for_alarm
from scaler.alerts.parse import parse_alarm
from scaler.alerts.render import SUMMARY_LIMIT, page_summary
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
    assert " × m5.xlarge now (from 8); or " in enriched["summary"]
    assert "m5d.xlarge" in enriched["summary"]
    assert "Paged by ALARM crash-reports-oldest-message" in enriched["summary"]
    assert {f["kind"] for f in enriched["diagnosis"]["findings"]} >= {"iowait_bound"}
    assert main(args) == EXIT_OK
    assert "ALARM crash-reports-oldest-message at" in capsys.readouterr().out
    page.write_text("{garbled")
    assert main(args) == EXIT_BAD_INPUT
    assert "alarm.json: not JSON" in capsys.readouterr().err


# --- every shape, from the examples written from AWS's and Alertmanager's documented fields ---

EXAMPLES = Path(__file__).parent.parent / "examples" / "alarms"
DEMO_POLICY = Policy(
    groups=[
        GroupPolicy(name="thumbnails", auto_scaling_group="thumbs-asg", queue="thumbs"),
        GroupPolicy(
            name="crash-processor", auto_scaling_group="crash-processor-asg", queue="crash-reports"
        ),
    ]
)


@pytest.mark.parametrize(
    ("example", "shape", "kind", "state"),
    [
        ("sns-metric-math.json", "SNS message", "metric-math", "ALARM"),
        ("sns-metric-math-ok.json", "SNS message", "metric-math", "OK"),
        (
            "sns-metric-math-insufficient-data.json",
            "SNS message",
            "metric-math",
            "INSUFFICIENT_DATA",
        ),
        ("sns-http-envelope.json", "SNS HTTP envelope", "metric", "ALARM"),
        ("lambda-sns-event.json", "Lambda SNS event", "metric-math", "ALARM"),
        ("eventbridge-metric-math.json", "EventBridge event", "metric-math", "ALARM"),
        ("eventbridge-anomaly-detection.json", "EventBridge event", "anomaly", "ALARM"),
        ("lambda-alarm-action.json", "Lambda alarm action", "metric-math", "ALARM"),
        ("alertmanager-webhook.json", "Alertmanager webhook", "alertmanager", "ALARM"),
    ],
)
def test_every_alarm_shape_parses_and_names_the_crash_processor(
    example: str, shape: str, kind: str, state: str
) -> None:
    """Each documented shape: read, classified, and matched (sub-metric dimensions, labels)."""
    alarm = parse_alarm((EXAMPLES / example).read_text(), example)
    assert (alarm.shape, alarm.kind, alarm.state) == (shape, kind, state)
    group = group_for_alarm(
        alarm, DEMO_POLICY, labels={"queue": "queue", "asg": "auto_scaling_group"}
    )
    assert group.name == "crash-processor"


def test_a_composite_alarm_matches_through_its_children(clients: Clients) -> None:
    """The rule names child alarms; DescribeAlarms reads their metrics; the group follows."""
    clients.cloudwatch.put_metric_alarm(
        AlarmName="crash-reports-backlog",
        EvaluationPeriods=5,
        Threshold=50000,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[
            {"Id": "e1", "Expression": "m1 + m2", "ReturnData": True},
            *[
                {
                    "Id": mid,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/SQS",
                            "MetricName": name,
                            "Dimensions": [{"Name": "QueueName", "Value": "crash-reports"}],
                        },
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                    "ReturnData": False,
                }
                for mid, name in [
                    ("m1", "ApproximateNumberOfMessagesVisible"),
                    ("m2", "ApproximateNumberOfMessagesNotVisible"),
                ]
            ],
        ],
    )
    alarm = parse_alarm((EXAMPLES / "sns-composite.json").read_text())
    assert alarm.kind == "composite"
    assert alarm.children == ["crash-reports-backlog", "crash-processor-deploying"]
    assert group_for_alarm(alarm, DEMO_POLICY, cloudwatch=clients.cloudwatch).name == (
        "crash-processor"
    )


def test_a_composite_alarm_whose_children_are_missing_says_why(clients: Clients) -> None:
    """No child alarm in the account: the error names the children and the reason."""
    alarm = parse_alarm((EXAMPLES / "sns-composite.json").read_text())
    with pytest.raises(InputError, match=r"crash-reports-backlog.*none of them exists"):
        group_for_alarm(alarm, DEMO_POLICY, cloudwatch=clients.cloudwatch)


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ("not-an-alarm-sqs-event.json", "an SQS event, not an alarm"),
        ("not-an-alarm-sns-subscription-confirmation.json", "an SNS SubscriptionConfirmation"),
    ],
)
def test_wrong_shapes_are_named(example: str, message: str) -> None:
    """An SQS event or an SNS SubscriptionConfirmation is named for what it is (no URL fetched)."""
    with pytest.raises(InputError, match=message) as err:
        parse_alarm((EXAMPLES / example).read_text(), example)
    assert "\n" not in str(err.value)
    assert "SubscribeURL" not in message or "never follows" in str(err.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2"},
            "an EventBridge 'EC2 Instance State-change Notification' event from aws.ec2",
        ),
        ({"Records": [{"eventSource": "aws:s3"}]}, "an S3 event, not an alarm"),
        ({"version": "3", "alerts": [{}]}, "Alertmanager webhook of version '3'"),
        ({"version": "4", "alerts": [], "status": "firing"}, "has no alerts"),
        (
            {"Type": "UnsubscribeConfirmation", "TopicArn": "arn:aws:sns:us-east-1:1:t"},
            "an SNS UnsubscribeConfirmation",
        ),
    ],
)
def test_other_wrong_shapes_get_one_line(document: dict[str, Any], message: str) -> None:
    """Other events and webhooks say what they are, on one line."""
    with pytest.raises(InputError, match=message):
        parse_alarm(json.dumps(document))


# --- hostile alarms: control characters, size, depth ---

_FORGED = "crash\n\x1b[2K\rRESOLVED: all clear\u202e\x07"


@pytest.mark.parametrize(
    ("field", "value"),
    [("AlarmName", _FORGED), ("NewStateReason", _FORGED * 3)],
)
def test_outside_text_reaches_no_output_raw(field: str, value: str) -> None:
    """Newlines, escapes, bidi overrides and bells are shown escaped, never passed through."""
    doc = {**SNS_ALARM, field: value}
    alarm = parse_alarm(json.dumps(doc))
    text = getattr(alarm, {"AlarmName": "name", "NewStateReason": "reason"}[field])
    assert not any(ch in text for ch in "\n\r\x1b\x07\u202e")
    assert "\\x0a" in text and "\\x1b" in text and "\\u202e" in text


def test_hostile_alarm_name_cannot_forge_lines_in_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An alarm with a forged line reaches stderr as one escaped line (no AWS needed: no group)."""
    policy = tmp_path / "p.yaml"
    policy.write_text("groups:\n  - name: other\n")
    alarm = tmp_path / "alarm.json"
    alarm.write_text(json.dumps({**SNS_ALARM, "AlarmName": _FORGED}))
    code = main(
        ["enrich", "--policy", str(policy), str(alarm), "--endpoint-url", "http://127.0.0.1:9"]
    )
    out = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    assert "\x1b" not in out.out + out.err and "\nRESOLVED" not in out.out + out.err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 1000 + "]" * 1000, "nested deeper than 32 levels"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested deeper than 32 levels"),
        (
            json.dumps({**SNS_ALARM, "NewStateReason": "x" * 300_000}),
            "SNS messages are at most 256 KB",
        ),
    ],
)
def test_input_is_bounded(text: str, message: str) -> None:
    """Deep nesting and oversized input are refused before they cost anything."""
    with pytest.raises(InputError, match=message) as err:
        parse_alarm(text)
    assert len(str(err.value)) < 200


def test_a_long_field_is_never_echoed_in_full() -> None:
    """A 200 KB reason is cut to CloudWatch's own limit (1,023 characters)."""
    alarm = parse_alarm(json.dumps({**SNS_ALARM, "NewStateReason": "y" * 200_000}))
    assert len(alarm.reason) <= 1023


@pytest.mark.parametrize(
    ("destinations", "message"),
    [
        (
            "[{type: pagerduty, routing_key: s3cr3t-r0uting-key}]",
            "routing_key: Value error, a secret is never written in the policy",
        ),
        (
            "[{type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/s3cr3t'}]",
            "webhook_url: Value error, a secret is never written in the policy",
        ),
        ("[{type: slack, webhook_url: {env: A, ssm: /b}}]", "name exactly one of env or ssm"),
        ("[{type: pager}]", "does not match any of the expected tags: 'pagerduty', 'slack'"),
        ("[{type: sns, topic_arn: enriched}]", "topic_arn: String should match pattern"),
    ],
)
def test_alert_destinations_in_the_policy_are_checked_and_secrets_never_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], destinations: str, message: str
) -> None:
    """A plaintext secret is refused without being repeated; unknown types list the valid ones."""
    policy = tmp_path / "p.yaml"
    policy.write_text(f"groups: [{{name: a}}]\nalerts:\n  destinations: {destinations}\n")
    assert main(["policy", "validate", str(policy)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err
    assert "s3cr3t" not in err


@pytest.mark.parametrize(
    ("example", "unavailable", "expected"),
    [
        (
            "sns-metric-math-ok.json",
            None,
            "RESOLVED crash-processor: crash-reports-backlog is OK again",
        ),
        (
            "sns-metric-math-insufficient-data.json",
            "GetMetricData throttled",
            "crash-processor: diagnosis unavailable: GetMetricData throttled. Paged by "
            "INSUFFICIENT_DATA crash-reports-backlog (the alarm lost its data): Insufficient Data: "
            "5 datapoints were unknown.",
        ),
    ],
)
def test_page_summary_without_a_diagnosis(
    example: str, unavailable: str | None, expected: str
) -> None:
    """OK resolves in one line; a missing diagnosis says why, then what paged and its reason."""
    alarm = parse_alarm((EXAMPLES / example).read_text())
    assert page_summary(alarm, "crash-processor", None, unavailable) == expected


def test_page_summary_is_cut_to_pagerdutys_limit() -> None:
    """However long the reason, the summary stays within 1,024 characters."""
    doc = json.loads((EXAMPLES / "sns-metric-math.json").read_text())
    alarm = parse_alarm(json.dumps({**doc, "NewStateReason": "z" * 1000}))
    summary = page_summary(alarm, "crash-processor", None, "x" * 300)
    assert len(summary) == SUMMARY_LIMIT and summary.endswith("…")


@pytest.mark.parametrize(
    ("external_url", "link"),
    [
        ("http://alertmanager.example.com:9093", "http://alertmanager.example.com:9093"),
        ("http://x.example|<!channel>", None),
        ("javascript:alert(1)", None),
        ("http://x.example/a b", None),
    ],
)
def test_an_alertmanager_link_is_kept_only_when_safe(external_url: str, link: str | None) -> None:
    """externalURL becomes a page link only as a plain http(s) URL (no markup, no spaces)."""
    doc = json.loads((EXAMPLES / "alertmanager-webhook.json").read_text())
    assert parse_alarm(json.dumps({**doc, "externalURL": external_url})).link == link
