"""`scaler enrich` end to end: the seeded incident, the CLI as a user runs it, pages received.

The moto server holds the incident (crash-processor, EBS-throttled); a local HTTP server is
PagerDuty and Slack; SNS is moto's. Every alarm shape is sent through the CLI.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scaler.aws import Clients
from scaler.cli import EXIT_FAILED, EXIT_OK, main
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.sim import scenarios
from tests.aws_faults import inject_fault
from tests.receiver import Answer, Receiver, receiver

EXAMPLES = Path(__file__).parent.parent / "examples" / "alarms"
PD_KEY = "R0UTINGKEY0123456789012345678901"


@pytest.fixture
def incident(clients: Clients) -> None:
    """The incident seeded so that its trace time is real time: the examples page at 11:26."""
    trace = scenarios.incident()
    assert trace.throttle_onset is not None
    alarm_at = trace.throttle_onset + timedelta(minutes=9)  # 11:26, as the examples say
    length = int((alarm_at - trace.window.start).total_seconds() // 60) - 1
    window = trace.window.head(length).model_copy(update={"group": "crash-processor"})
    seed_local_aws(
        clients,
        window,
        asg_name="crash-processor-asg",
        queue_name="crash-reports",
        max_size=40,
        now=alarm_at,
    )


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    with receiver() as pd, receiver(default=Answer(200, "ok")) as slack:
        yield pd, slack


def write_policy(
    tmp_path: Path, pd: Receiver, topic: str | None = None, *, budget: float = 8
) -> Path:
    sns = f"    - type: sns\n      topic_arn: {topic}\n" if topic else ""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "groups:\n"
        "  - name: crash-processor\n"
        "    auto_scaling_group: crash-processor-asg\n"
        "    queue: crash-reports\n"
        "    max_size: 40\n"
        f"state:\n  path: {tmp_path / 'state.db'}\n"
        "alerts:\n"
        f"  budget_seconds: {budget}\n"
        "  destinations:\n"
        "    - type: pagerduty\n"
        "      routing_key: {env: PAGERDUTY_ROUTING_KEY}\n"
        f"      url: {pd.url}/v2/enqueue\n"
        "    - type: slack\n"
        "      webhook_url: {env: SLACK_WEBHOOK_URL}\n" + sns
    )
    return policy


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, receivers: tuple[Receiver, Receiver]) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", PD_KEY)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{receivers[1].url}/services/T0/B0/hook")


def enrich(aws: LocalAws, policy: Path, alarm: str | Path, *extra: str) -> list[str]:
    return [
        "enrich",
        "--policy",
        str(policy),
        str(alarm),
        "--endpoint-url",
        aws.endpoint_url,
        *extra,
    ]


@pytest.mark.usefixtures("incident", "env")
def test_without_send_it_shows_what_each_destination_would_get(
    aws: LocalAws,
    tmp_path: Path,
    receivers: tuple[Receiver, Receiver],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Dry run: the diagnosis, then each destination and its exact body; nothing is sent."""
    pd, slack = receivers
    policy = write_policy(tmp_path, pd)
    assert main(enrich(aws, policy, EXAMPLES / "sns-metric-math.json")) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("crash-processor: iowait_bound (also ")
    assert "Would send (a dry run; --send sends):" in out
    assert f"pagerduty -> {pd.url}/v2/enqueue (routing key from env PAGERDUTY_ROUTING_KEY):" in out
    assert '"routing_key": "<env PAGERDUTY_ROUTING_KEY>"' in out and PD_KEY not in out
    assert "slack -> Slack incoming webhook (URL from env SLACK_WEBHOOK_URL):" in out
    assert pd.requests == [] and slack.requests == []
    assert main([*enrich(aws, policy, EXAMPLES / "sns-metric-math.json"), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [d["type"] for d in shown["deliveries"]] == ["pagerduty", "slack"]
    assert shown["sent"] is False
    assert shown["deliveries"][0]["request"]["payload"]["summary"] == shown["summary"]


@pytest.mark.usefixtures("incident", "env")
def test_send_pages_every_destination_once_and_ok_resolves(
    aws: LocalAws,
    clients: Clients,
    tmp_path: Path,
    receivers: tuple[Receiver, Receiver],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The metric-math alarm: PagerDuty names iowait_bound and the capacity; Slack, SNS once."""
    pd, slack = receivers
    topic = clients.sns.create_topic(Name="enriched-alerts")["TopicArn"]
    queue_url = clients.sqs.create_queue(QueueName="enriched-copy")["QueueUrl"]
    arn = clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    clients.sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    policy = write_policy(tmp_path, pd, topic)
    alarm = EXAMPLES / "sns-metric-math.json"
    assert main([*enrich(aws, policy, alarm), "--send"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Sent:" in out and "pagerduty -> " in out and "sent (HTTP 202: trigger " in out
    [trigger] = pd.bodies("/v2/enqueue")
    summary = trigger["payload"]["summary"]
    assert summary.startswith("crash-processor: iowait_bound")
    assert " × m5.xlarge now (from 8); or " in summary and len(summary) <= 1024
    assert trigger["payload"]["component"] == "crash-processor"
    assert trigger["payload"]["severity"] in ("critical", "error")
    assert {f["kind"] for f in trigger["payload"]["custom_details"]["findings"]} >= {"iowait_bound"}
    assert len(slack.bodies()) == 1
    messages = clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    [published] = [json.loads(m["Body"]) for m in messages]
    assert published["alarm"] == json.loads(alarm.read_text())
    assert published["scaler"]["cause"] == "iowait_bound"

    # A retry of the same state change: PagerDuty dedups by key, Slack and SNS are skipped.
    assert main([*enrich(aws, policy, alarm), "--send"]) == EXIT_OK
    assert "skipped: already sent for this alarm state change" in capsys.readouterr().out
    assert len(slack.bodies()) == 1
    assert "Messages" not in clients.sqs.receive_message(QueueUrl=queue_url)

    # OK resolves the same incident.
    ok = EXAMPLES / "sns-metric-math-ok.json"
    assert main([*enrich(aws, policy, ok), "--send"]) == EXIT_OK
    *_, resolve = pd.bodies("/v2/enqueue")
    assert resolve == {
        "routing_key": PD_KEY,
        "dedup_key": trigger["dedup_key"],
        "event_action": "resolve",
    }
    assert len(slack.bodies()) == 2 and slack.bodies()[-1]["text"].startswith("RESOLVED")


@pytest.mark.usefixtures("incident", "env")
def test_every_alarm_shape_through_the_cli_diagnoses_the_crash_processor(
    aws: LocalAws,
    clients: Clients,
    tmp_path: Path,
    receivers: tuple[Receiver, Receiver],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SNS, envelope, Lambda SNS, EventBridge, anomaly, Lambda action, composite, Alertmanager."""
    clients.cloudwatch.put_metric_alarm(
        AlarmName="crash-reports-backlog",
        EvaluationPeriods=5,
        Threshold=50000,
        ComparisonOperator="GreaterThanThreshold",
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Statistic="Maximum",
        Period=60,
        Dimensions=[{"Name": "QueueName", "Value": "crash-reports"}],
    )
    policy = write_policy(tmp_path, receivers[0])
    shapes = [
        "sns-metric-math.json",
        "sns-http-envelope.json",
        "lambda-sns-event.json",
        "eventbridge-metric-math.json",
        "eventbridge-anomaly-detection.json",
        "lambda-alarm-action.json",
        "sns-composite.json",
        "alertmanager-webhook.json",
        "sns-metric-math-insufficient-data.json",
    ]
    seen: dict[str, Any] = {}
    for shape in shapes:
        code = main([*enrich(aws, policy, EXAMPLES / shape), "--format", "json"])
        seen[shape] = (code, json.loads(capsys.readouterr().out))
    for shape, (code, shown) in seen.items():
        assert code == EXIT_OK, shape
        assert shown["group"] == "crash-processor", shape
        assert "iowait_bound" in shown["summary"], shape
    lost = seen["sns-metric-math-insufficient-data.json"][1]
    assert "The alarm lost its data; scaler read: data as of" in lost["summary"]
    assert lost["deliveries"][0]["request"]["payload"]["severity"] == "warning"
    assert seen["alertmanager-webhook.json"][1]["deliveries"][0]["request"]["links"][0] == {
        "href": "http://alertmanager.example.com:9093",
        "text": "Alertmanager",
    }


@pytest.mark.usefixtures("incident", "env")
def test_a_cloudwatch_that_throttles_forever_still_pages_within_the_budget(
    aws: LocalAws,
    clients: Clients,
    tmp_path: Path,
    receivers: tuple[Receiver, Receiver],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fail open: GetMetricData throttled on every call; the page goes out, marked so."""
    pd, _ = receivers
    inject_fault(clients.cloudwatch, "GetMetricData", "throttling")
    monkeypatch.setattr("scaler.cli.enrich.clients_from", lambda args: clients)
    policy = write_policy(tmp_path, pd, budget=2)
    started = time.monotonic()
    code = main([*enrich(aws, policy, EXAMPLES / "sns-metric-math.json"), "--send"])
    elapsed = time.monotonic() - started
    [trigger] = pd.bodies()
    summary = trigger["payload"]["summary"]
    assert summary.startswith("crash-processor: diagnosis unavailable: ")
    # Why depends on the machine's speed: the retries ran out (Throttling), or the budget did.
    assert "Throttling" in summary or "longer than its 2 s budget" in summary
    assert "Paged by ALARM crash-reports-backlog" in summary
    assert trigger["payload"]["custom_details"]["diagnosis_unavailable"]
    assert elapsed < 2 + 5  # the budget, plus the send (with room for a loaded machine)
    assert code == EXIT_FAILED  # scaler could not do its job (the diagnosis), the page went out
    capsys.readouterr()


@pytest.mark.usefixtures("incident", "env")
def test_a_failing_destination_exits_1_and_the_others_still_get_theirs(
    aws: LocalAws,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    receivers: tuple[Receiver, Receiver],
) -> None:
    """PagerDuty refuses (400): exit 1 naming it; Slack's message still arrives."""
    _, slack = receivers
    with receiver(default=Answer(400, '{"status":"invalid routing key"}')) as bad_pd:
        policy = write_policy(tmp_path, bad_pd)
        code = main([*enrich(aws, policy, EXAMPLES / "sns-metric-math.json"), "--send"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "scaler: failed: pagerduty: refused with HTTP 400" in err
    assert len(slack.bodies()) == 1


@pytest.mark.usefixtures("env")
def test_an_alarm_for_no_group_still_pages_and_exits_2(
    aws: LocalAws,
    tmp_path: Path,
    receivers: tuple[Receiver, Receiver],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fail open: the page goes out saying the alarm names no group; exit 2 says fix the policy."""
    pd, _ = receivers
    alarm = json.loads((EXAMPLES / "sns-metric-math.json").read_text())
    for metric in alarm["Trigger"]["Metrics"][1:]:
        metric["MetricStat"]["Metric"]["Dimensions"] = [{"name": "QueueName", "value": "other"}]
    path = tmp_path / "other.json"
    path.write_text(json.dumps(alarm))
    code = main([*enrich(aws, write_policy(tmp_path, pd), path), "--send"])
    err = capsys.readouterr().err
    assert code == 2
    assert "scaler: error: alarm 'crash-reports-backlog' (QueueName=other) names no group" in err
    [trigger] = pd.bodies()
    assert trigger["payload"]["summary"].startswith(
        "no group: diagnosis unavailable: alarm 'crash-reports-backlog'"
    )
    assert trigger["payload"]["component"] == "unmatched"
