"""The enrich Lambda: an SNS event in, pages out, retries deduplicated, failures fail it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from scaler.aws import Clients
from scaler.control import create_table
from scaler.enrich_handler import EnrichFailedError, run_invocation
from scaler.errors import InputError
from tests.receiver import Answer, Receiver, receiver
from tests.test_enrich import EXAMPLES, PD_KEY, incident

TABLE = "scaler-state"
__all__ = ["incident"]  # the seeded-incident fixture, shared with test_enrich


@dataclass
class Context:
    aws_request_id: str = "req-1"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def environ(clients: Clients, tmp_path: Path, pd: Receiver, slack: Receiver) -> dict[str, str]:
    create_table(clients.dynamodb, TABLE)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "groups:\n"
        "  - name: crash-processor\n"
        "    auto_scaling_group: crash-processor-asg\n"
        "    queue: crash-reports\n"
        "alerts:\n"
        "  destinations:\n"
        "    - type: pagerduty\n"
        "      routing_key: {env: PAGERDUTY_ROUTING_KEY}\n"
        f"      url: {pd.url}/v2/enqueue\n"
        "    - type: slack\n"
        "      webhook_url: {ssm: /scaler/slack-webhook}\n"
    )
    clients.ssm.put_parameter(
        Name="/scaler/slack-webhook", Value=f"{slack.url}/hook", Type="SecureString"
    )
    return {
        "SCALER_POLICY": str(policy),
        "SCALER_STATE": f"dynamodb://{TABLE}",
        "PAGERDUTY_ROUTING_KEY": PD_KEY,
    }


def event(name: str = "lambda-sns-event.json") -> dict[str, object]:
    loaded: dict[str, object] = json.loads((EXAMPLES / name).read_text())
    return loaded


@pytest.mark.usefixtures("incident")
def test_an_invocation_pages_and_its_retry_does_not_double_page(
    clients: Clients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SNS event -> PagerDuty trigger naming iowait_bound, one Slack post; a retry: no new post."""
    with receiver() as pd, receiver(default=Answer(200, "ok")) as slack:
        env = environ(clients, tmp_path, pd, slack)
        first = run_invocation(event(), Context(), clients=clients, environ=env)
        again = run_invocation(event(), Context("req-2"), clients=clients, environ=env)
        pd_bodies, slack_posts = pd.bodies(), slack.bodies()
    assert first["group"] == "crash-processor" and "iowait_bound" in first["summary"]
    assert [d["sent"] for d in first["deliveries"]] == [True, True]
    assert again["deliveries"][1]["skipped"].startswith("already sent")
    assert len(slack_posts) == 1
    assert [b["dedup_key"] for b in pd_bodies] == [pd_bodies[0]["dedup_key"]] * 2
    assert json.loads(capsys.readouterr().out.splitlines()[0])["request_id"] == "req-1"


@pytest.mark.usefixtures("incident")
def test_a_failing_destination_fails_the_invocation_after_the_others_sent(
    clients: Clients, tmp_path: Path
) -> None:
    """PagerDuty down: the invocation raises (the platform retries); Slack already has its post."""
    with receiver(default=Answer(503, "down")) as pd, receiver(default=Answer(200, "ok")) as slack:
        env = environ(clients, tmp_path, pd, slack)
        started = time.monotonic()
        with pytest.raises(EnrichFailedError, match="pagerduty: still failing"):
            run_invocation(event(), Context(remaining_ms=9_000), clients=clients, environ=env)
        elapsed = time.monotonic() - started
        posts = slack.bodies()
    assert len(posts) == 1
    assert elapsed < 9.0 - 3.0 + 0.5  # ended before the invocation's deadline less its margin


def test_an_event_that_is_not_an_alarm_fails_with_its_name(
    clients: Clients, tmp_path: Path
) -> None:
    """An SQS event sent to the function by mistake: InputError, one line naming it."""
    with receiver() as pd, receiver() as slack:
        env = environ(clients, tmp_path, pd, slack)
        with pytest.raises(InputError, match="an SQS event, not an alarm"):
            run_invocation(
                event("not-an-alarm-sqs-event.json"), Context(), clients=clients, environ=env
            )
