"""Destinations: exact bodies, retries (429 Retry-After, 5xx), timeouts, isolation, dedup.

A real local HTTP server stands in for PagerDuty and Slack; SNS and SSM are the moto server.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from scaler.alerts.destinations.http import retry_after_seconds
from scaler.alerts.destinations.slack import mrkdwn
from scaler.alerts.diagnose import Diagnosis
from scaler.alerts.parse import parse_alarm
from scaler.alerts.render import Page, build_page
from scaler.alerts.send import deliver
from scaler.alerts.settings import AlertSettings
from scaler.aws import Clients
from scaler.control.store.sqlite import SqliteStateStore
from scaler.policy import GroupPolicy
from tests.receiver import Answer, receiver

EXAMPLES = Path(__file__).parent.parent / "examples" / "alarms"
GROUP = GroupPolicy(
    name="crash-processor", auto_scaling_group="crash-processor-asg", queue="crash-reports"
)
NOW = datetime(2026, 3, 2, 11, 27, tzinfo=UTC)
ENV = {"PD_KEY": "R0UTINGKEY0123456789012345678901", "SLACK_URL": ""}


def page_of(example: str, *, unavailable: str = "CloudWatch did not answer") -> Page:
    alarm = parse_alarm((EXAMPLES / example).read_text(), example)
    return build_page(alarm, GROUP, Diagnosis(unavailable=unavailable), region="us-east-1")


def settings(*destinations: Mapping[str, Any], send_seconds: float = 10) -> AlertSettings:
    return AlertSettings.model_validate(
        {"destinations": list(destinations), "send_seconds": send_seconds}
    )


def pagerduty(url: str) -> dict[str, Any]:
    return {"type": "pagerduty", "routing_key": {"env": "PD_KEY"}, "url": f"{url}/v2/enqueue"}


def test_pagerduty_trigger_is_exactly_the_events_v2_body() -> None:
    """ALARM -> one trigger: summary, severity, source, component, details, links, dedup key."""
    page = page_of("sns-metric-math.json")
    with receiver() as pd:
        [sent] = deliver(
            page, settings(pagerduty(pd.url)), clients=None, store=None, environ=ENV, now=NOW
        )
        bodies = pd.bodies("/v2/enqueue")
    assert sent.sent and sent.error is None
    console = "https://us-east-1.console.aws.amazon.com"
    assert bodies == [
        {
            "routing_key": ENV["PD_KEY"],
            "dedup_key": page.dedup_key,
            "event_action": "trigger",
            "payload": {
                "summary": "crash-processor: diagnosis unavailable: CloudWatch did not answer. "
                "Paged by ALARM crash-reports-backlog: " + page.alarm.reason,
                "severity": "error",
                "source": "crash-processor-asg",
                "component": "crash-processor",
                "group": "scaler",
                "class": "diagnosis unavailable",
                "timestamp": "2026-03-02T11:26:00+00:00",
                "custom_details": {
                    "alarm": {
                        "name": "crash-reports-backlog",
                        "state": "ALARM",
                        "previous_state": "OK",
                        "reason": page.alarm.reason,
                        "kind": "metric-math",
                        "received_as": "SNS message",
                    },
                    "advice": None,
                    "facts": {},
                    "findings": [],
                    "recommendations": [],
                    "diagnosis_unavailable": "CloudWatch did not answer",
                },
            },
            "links": [
                {
                    "href": f"{console}/cloudwatch/home?region=us-east-1#alarmsV2:alarm/"
                    "crash-reports-backlog",
                    "text": "CloudWatch alarm crash-reports-backlog",
                },
                {
                    "href": f"{console}/cloudwatch/home?region=us-east-1#metricsV2?search="
                    "crash-processor-asg%20crash-reports",
                    "text": "CloudWatch metrics of crash-processor",
                },
                {
                    "href": f"{console}/ec2/home?region=us-east-1#AutoScalingGroupDetails:id="
                    "crash-processor-asg;view=details",
                    "text": "Auto Scaling group crash-processor-asg",
                },
            ],
            "client": "scaler",
        }
    ]


def test_ok_resolves_with_the_same_dedup_key() -> None:
    """OK -> resolve, on the dedup key the ALARM's trigger used; nothing else in the body."""
    alarm_page, ok_page = page_of("sns-metric-math.json"), page_of("sns-metric-math-ok.json")
    with receiver() as pd:
        for page in (alarm_page, ok_page):
            deliver(
                page, settings(pagerduty(pd.url)), clients=None, store=None, environ=ENV, now=NOW
            )
        trigger, resolve = pd.bodies()
    assert trigger["event_action"] == "trigger"
    assert resolve == {
        "routing_key": ENV["PD_KEY"],
        "dedup_key": trigger["dedup_key"],
        "event_action": "resolve",
    }


@pytest.mark.parametrize(
    ("script", "requests", "least_gap_s", "ok"),
    [
        # A 429 is retried after exactly what Retry-After asks.
        ([Answer(429, "{}", {"Retry-After": "1"}), Answer()], 2, 1.0, True),
        # 5xx are retried with backoff (0.5 s, then 1 s).
        ([Answer(500, "oops"), Answer(502, "bad gateway"), Answer()], 3, 0.5, True),
        # Other 4xx are the request's fault: no retry.
        ([Answer(400, '{"status":"invalid event"}')], 1, 0.0, False),
        # A Retry-After past the send budget fails at once rather than sleep past it.
        ([Answer(429, "{}", {"Retry-After": "60"})], 1, 0.0, False),
    ],
)
def test_pagerduty_retries_within_the_budget(
    script: list[Answer], requests: int, least_gap_s: float, ok: bool
) -> None:
    """429 honours Retry-After, 5xx backs off, 4xx fails at once, nothing sleeps past the budget."""
    with receiver(*script) as pd:
        started = time.monotonic()
        [sent] = deliver(
            page_of("sns-metric-math.json"),
            settings(pagerduty(pd.url), send_seconds=5),
            clients=None,
            store=None,
            environ=ENV,
            now=NOW,
        )
        elapsed = time.monotonic() - started
        times = [t for _, _, t in pd.requests]
    assert len(times) == requests
    assert sent.sent is ok and (sent.error is None) is ok
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= least_gap_s for gap in gaps)
    assert elapsed < 5.5
    if not ok:
        assert "pagerduty" in (sent.error or "")


def test_a_destination_that_never_answers_times_out_within_its_budget() -> None:
    """A receiver that hangs costs the send budget, not more; the error says it got no answer."""
    with receiver(default=Answer(delay_s=4)) as pd:
        started = time.monotonic()
        [sent] = deliver(
            page_of("sns-metric-math.json"),
            settings(pagerduty(pd.url), send_seconds=1.5),
            clients=None,
            store=None,
            environ=ENV,
            now=NOW,
        )
        elapsed = time.monotonic() - started
    assert not sent.sent
    assert "no answer" in (sent.error or "") or "no time left" in (sent.error or "")
    assert elapsed < 3.0


def test_a_failing_destination_does_not_stop_the_others() -> None:
    """PagerDuty down (500 throughout) -> its error; Slack still gets its message."""
    with (
        receiver(default=Answer(500, "down")) as pd,
        receiver(default=Answer(200, "ok")) as slack,
    ):
        env = {**ENV, "SLACK_URL": f"{slack.url}/services/T0/B0/x"}
        results = deliver(
            page_of("sns-metric-math.json"),
            settings(
                pagerduty(pd.url),
                {"type": "slack", "webhook_url": {"env": "SLACK_URL"}},
                send_seconds=1.5,
            ),
            clients=None,
            store=None,
            environ=env,
            now=NOW,
        )
        slack_bodies = slack.bodies("/services/T0/B0/x")
    pd_result, slack_result = results
    assert pd_result.failed and "still failing" in (pd_result.error or "")
    assert slack_result.sent and len(slack_bodies) == 1


def test_slack_block_kit_within_limits_and_hostile_text_inert() -> None:
    """Header <= 150, sections <= 3,000, a text fallback; '<!channel>' and '<url|x>' escaped."""
    doc = json.loads((EXAMPLES / "sns-metric-math.json").read_text())
    doc["AlarmName"] = "<!channel> <https://evil.example|click> " + "x" * 400
    doc["NewStateReason"] = "r" * 5000
    alarm = parse_alarm(json.dumps(doc))
    page = build_page(alarm, GROUP, Diagnosis(unavailable="<!here> " * 600), region="us-east-1")
    with receiver(default=Answer(200, "ok")) as slack:
        env = {"SLACK_URL": f"{slack.url}/hook"}
        deliver(
            page,
            settings({"type": "slack", "webhook_url": {"env": "SLACK_URL"}}),
            clients=None,
            store=None,
            environ=env,
            now=NOW,
        )
        [body] = slack.bodies()
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    parts = [
        p for b in blocks for p in [b.get("text"), *b.get("fields", []), *b.get("elements", [])]
    ]
    assert all(len(p["text"]) <= 3000 for p in parts if p) and len(body["text"]) <= 3000
    # Slack reads mentions and links in mrkdwn and in the fallback; plain_text stays literal.
    assert blocks[0]["text"]["type"] == "plain_text"
    mrkdwn_texts = [p["text"] for p in parts if p and p["type"] == "mrkdwn"]
    interpreted = json.dumps([body["text"], *mrkdwn_texts])
    assert "<!channel>" not in interpreted and "<!here>" not in interpreted
    assert "<https://evil.example|click>" not in interpreted
    assert "&lt;!channel&gt;" in interpreted


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("a < b & c > d", 100, "a &lt; b &amp; c &gt; d"),
        ("<!channel>", 100, "&lt;!channel&gt;"),
        ("abcdef", 4, "abc…"),
    ],
)
def test_mrkdwn_escapes_and_cuts(text: str, limit: int, expected: str) -> None:
    """Slack's three control characters escaped; long text cut with an ellipsis."""
    assert mrkdwn(text, limit) == expected


_WHEN = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        (format_datetime(_WHEN + timedelta(seconds=7), usegmt=True), 7.0),
        (format_datetime(_WHEN - timedelta(seconds=7), usegmt=True), 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_dates(header: str | None, expected: float | None) -> None:
    """Retry-After as delta-seconds or an HTTP date (a past date: retry now); junk: no opinion."""
    assert retry_after_seconds(header, now=_WHEN) == expected


def _sqs_messages(clients: Clients, queue_url: str) -> list[dict[str, Any]]:
    got = clients.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def test_sns_republishes_the_page_with_the_original_alarm_once_per_state_change(
    clients: Clients, tmp_path: Path
) -> None:
    """SNS gets {scaler, alarm}; a retry of the same state change is skipped (state store)."""
    topic = clients.sns.create_topic(Name="enriched-alerts")["TopicArn"]
    queue_url = clients.sqs.create_queue(QueueName="enriched-copy")["QueueUrl"]
    queue_arn = clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    clients.sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    page = page_of("sns-metric-math.json")
    store = SqliteStateStore(tmp_path / "state.db")
    chosen = settings({"type": "sns", "topic_arn": topic})
    try:
        first = deliver(page, chosen, clients=clients, store=store, environ={}, now=NOW)
        again = deliver(page, chosen, clients=clients, store=store, environ={}, now=NOW)
        records = store.audit("crash-processor-asg")  # keyed as `scaler history` reads it
    finally:
        store.close()
    assert first[0].sent and again[0].skipped and "already sent" in again[0].skipped
    assert first[0].request["Subject"] == "ALARM crash-processor: crash-reports-backlog"
    [message] = _sqs_messages(clients, queue_url)
    original = json.loads((EXAMPLES / "sns-metric-math.json").read_text())
    assert message["alarm"] == original
    assert message["scaler"]["summary"] == page.summary
    assert message["scaler"]["group"] == "crash-processor"
    assert [(r.phase, r.result, r.call and r.call.service) for r in records] == [
        ("outcome", "applied", "sns")
    ]


def test_slack_retries_after_a_failed_send_but_never_after_a_good_one(tmp_path: Path) -> None:
    """A failed Slack post records nothing (its retry posts); a good one is never repeated."""
    store = SqliteStateStore(tmp_path / "state.db")
    page = page_of("sns-metric-math.json")
    try:
        with receiver(Answer(404, "no_service"), default=Answer(200, "ok")) as slack:
            chosen = settings({"type": "slack", "webhook_url": {"env": "SLACK_URL"}})
            env = {"SLACK_URL": f"{slack.url}/hook"}
            runs = [
                deliver(page, chosen, clients=None, store=store, environ=env, now=NOW)[0]
                for _ in range(3)
            ]
            posts = len(slack.bodies())
    finally:
        store.close()
    assert [(r.sent, r.failed, bool(r.skipped)) for r in runs] == [
        (False, True, False),
        (True, False, False),
        (False, False, True),
    ]
    assert posts == 2


def test_secrets_come_from_env_or_ssm_and_are_never_shown(clients: Clients) -> None:
    """SSM SecureString read at send time; a missing env var names the variable, not a secret."""
    with receiver(default=Answer(200, "ok")) as slack:
        clients.ssm.put_parameter(
            Name="/scaler/slack-webhook", Value=f"{slack.url}/secret-hook", Type="SecureString"
        )
        results = deliver(
            page_of("sns-metric-math.json"),
            settings(
                {"type": "slack", "webhook_url": {"ssm": "/scaler/slack-webhook"}},
                {"type": "pagerduty", "routing_key": {"env": "PD_KEY"}, "url": f"{slack.url}/pd"},
            ),
            clients=clients,
            store=None,
            environ={},
            now=NOW,
        )
        paths = [p for p, _, _ in slack.requests]
    slack_result, pd_result = results
    assert slack_result.sent and paths == ["/secret-hook"]
    assert pd_result.error == "pagerduty routing key: environment variable PD_KEY is not set"
    assert "secret-hook" not in json.dumps(slack_result.request)
    assert pd_result.request["routing_key"] == "<env PD_KEY>"


def test_stdout_prints_one_json_line_per_page(capsys: pytest.CaptureFixture[str]) -> None:
    """stdout (the Lambda's log): the enriched alarm as `scaler enrich --format json` shapes it."""
    page = page_of("sns-metric-math.json")
    [sent] = deliver(
        page, settings({"type": "stdout"}), clients=None, store=None, environ={}, now=NOW
    )
    [line] = capsys.readouterr().out.splitlines()
    printed = json.loads(line)
    assert sent.sent and sent.note == "printed"
    assert printed["summary"] == page.summary and printed["group"] == "crash-processor"
    assert printed["alarm"]["dimensions"] == {"QueueName": "crash-reports"}
    assert printed["diagnosis_unavailable"] == "CloudWatch did not answer"
