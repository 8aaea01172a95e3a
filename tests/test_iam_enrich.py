"""The enrich Lambda's grants against the calls it makes: an alarm paged to PagerDuty, Slack and
SNS (secrets from SSM, records in DynamoDB), every AWS call recorded on the local AWS."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler.aws import Clients
from scaler.control import create_table
from scaler.enrich_handler import run_invocation
from tests.receiver import Answer, receiver
from tests.test_enrich import incident
from tests.test_enrich_handler import Context, event
from tests.test_iam import CallRecorder, _listed, template

__all__ = ["incident"]  # the seeded-incident fixture, shared with test_enrich

TABLE = "scaler-state"
# Granted for what this run does not meet: a composite alarm, a launch configuration, a group in
# another account (exercised for the tick in test_iam, in test_alerts and test_enrich_places).
NOT_EXERCISED = {
    "cloudwatch:DescribeAlarms": "read only for a composite alarm's children",
    "autoscaling:DescribeLaunchConfigurations": "read only for a group on a launch configuration",
    "sts:AssumeRole": "only for a group in another account (tests/test_enrich_places.py)",
}
# Called, and granted by no policy: AWS lets every identity ask who it is, and no policy can deny
# it (the alarm's account is compared with scaler's own).
NEEDS_NO_GRANT = {"sts:GetCallerIdentity"}


def enrich_grants() -> set[str]:
    """The actions the template's Enrich function allows (its inline statements and the
    `Republishes` condition's statement taken as true)."""
    actions: set[str] = set()
    for policy in template()["Resources"]["Enrich"]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []):
            if "If" in statement:
                statement = statement["If"][1]  # noqa: PLW2901 - the granted branch
            actions.update(_listed(statement["Action"]))
    return actions


@pytest.mark.usefixtures("incident")
def test_the_enrich_function_grants_exactly_what_it_calls(
    clients: Clients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trigger and resolve with every destination: each call granted, each grant called."""
    recorder = CallRecorder()
    recorder.watch(clients)
    create_table(clients.dynamodb, TABLE)
    topic = clients.sns.create_topic(Name="enriched-alerts")["TopicArn"]
    with receiver() as pd, receiver(default=Answer(200, "ok")) as slack:
        clients.ssm.put_parameter(Name="/scaler/pd", Value="k" * 32, Type="SecureString")
        clients.ssm.put_parameter(Name="/scaler/slack", Value=f"{slack.url}/h", Type="SecureString")
        policy = tmp_path / "policy.yaml"
        policy.write_text(
            "groups:\n  - name: crash-processor\n    auto_scaling_group: crash-processor-asg\n"
            "    queue: crash-reports\n"
            "alerts:\n  destinations:\n"
            "    - {type: pagerduty, routing_key: {ssm: /scaler/pd},"
            f" url: {pd.url}/v2/enqueue}}\n"
            "    - {type: slack, webhook_url: {ssm: /scaler/slack}}\n"
            f"    - {{type: sns, topic_arn: '{topic}'}}\n"
        )
        env = {"SCALER_POLICY": str(policy), "SCALER_STATE": f"dynamodb://{TABLE}"}
        calls = recorder.during(
            lambda: run_invocation(event(), Context(), clients=clients, environ=env)
        )
    capsys.readouterr()
    grants = enrich_grants() - {"sqs:SendMessage"}  # SAM's on-failure destination, not scaler
    assert sorted(calls - grants - NEEDS_NO_GRANT) == [], "called, not granted"
    assert sorted(grants - calls - set(NOT_EXERCISED)) == [], "granted, never called"
