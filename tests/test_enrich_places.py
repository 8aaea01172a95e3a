"""`scaler enrich` with one ASG name in several accounts and regions, on the local AWS.

`workers` runs in account A (eu-west-1, idle) and account B (us-west-2, the incident's
backlog), and the policy names it in scaler's own account too (tests/test_accounts.py's
policy). An alarm from B gets B's group and B's diagnosis, read through B's role in us-west-2;
the same alarm without its account and region names every candidate and exits 2. The tables
of shapes and places are in tests/test_alert_places.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scaler.aws import Clients
from scaler.cli import EXIT_BAD_INPUT, EXIT_OK, main
from scaler.demo.embedded import LocalAws
from scaler.enrich_handler import run_invocation
from tests.test_accounts import NOW, PLACES, A, B, clients_in, seed, write_policy
from tests.test_enrich_handler import Context

REGION = {A: "eu-west-1", B: "us-west-2"}
NAMES = {A: "EU (Ireland)", B: "US West (Oregon)"}


def alarm(account: str | None) -> dict[str, Any]:
    """The SNS alarm message CloudWatch sends for `workers`' backlog alarm in `account`; None:
    one that does not say where (no AlarmArn or AWSAccountId)."""
    message: dict[str, Any] = {
        "AlarmName": "workers-backlog",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 3 datapoints were greater than the threshold.",
        "StateChangeTime": NOW.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "GroupInServiceInstances",
            "Namespace": "AWS/AutoScaling",
            "Dimensions": [{"value": "workers", "name": "AutoScalingGroupName"}],
        },
    }
    if account is not None:
        message |= {
            "AWSAccountId": account,
            "Region": NAMES[account],
            "AlarmArn": f"arn:aws:cloudwatch:{REGION[account]}:{account}:alarm:workers-backlog",
        }
    return message


@pytest.fixture
def policy(clients: Clients, tmp_path: Path) -> Path:
    """A's workers idle, B's falling behind; the policy names both and scaler's own."""
    seed(clients, PLACES["workers-a"], busy=False)
    seed(clients, PLACES["workers-b"], busy=True)
    return write_policy(tmp_path)


def enrich(aws: LocalAws, policy: Path, path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """`scaler enrich --format json` as a user runs it: (exit code, what it printed, stderr)."""
    capsys.readouterr()
    code = main(
        [
            "enrich",
            "--policy",
            str(policy),
            str(path),
            "--format",
            "json",
            "--endpoint-url",
            aws.endpoint_url,
        ]
    )
    out, err = capsys.readouterr()
    return code, json.loads(out), err


@pytest.mark.parametrize(
    ("account", "group", "falling_behind"), [(B, "workers-b", True), (A, "workers-a", False)]
)
def test_an_alarm_from_one_account_gets_that_accounts_group_and_diagnosis(
    aws: LocalAws,
    policy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    account: str,
    group: str,
    falling_behind: bool,
) -> None:
    """The alarm's ARN says where: that group, diagnosed from its own account and region (the
    only place a `workers` group with data is: read anywhere else, there would be none)."""
    path = tmp_path / "alarm.json"
    path.write_text(json.dumps(alarm(account)))
    code, shown, err = enrich(aws, policy, path, capsys)
    assert (code, err) == (EXIT_OK, "")
    assert shown["group"] == group
    assert (shown["alarm"]["account"], shown["alarm"]["region"]) == (account, REGION[account])
    diagnosis = shown["diagnosis"]
    assert diagnosis["errors"] == []
    assert {r["group"] for r in diagnosis["recommendations"]} <= {group}
    kinds = [f["kind"] for f in diagnosis["findings"]]
    more = [
        r
        for r in diagnosis["recommendations"]
        if r["desired_capacity"] is not None and r["desired_capacity"] > r["current_capacity"]
    ]
    # B's incident backlog pages with B's cause and a scale-out; A's idle fleet has neither.
    assert ("backlog_growing" in kinds) is falling_behind
    assert bool(more) is falling_behind
    if falling_behind:
        assert shown["summary"].startswith(f"{group}: backlog_growing: {more[0]['summary']}.")


def test_an_alarm_that_does_not_say_its_account_names_every_candidate_and_exits_2(
    aws: LocalAws, policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No AlarmArn, no AWSAccountId: three groups called workers, none chosen; the page still
    goes out saying so, and exit 2 says the alarm (or the policy) needs fixing."""
    path = tmp_path / "alarm.json"
    path.write_text(json.dumps(alarm(None)))
    code, shown, err = enrich(aws, policy, path, capsys)
    assert code == EXIT_BAD_INPUT
    assert shown["group"] is None and shown["diagnosis"] is None
    [line] = err.splitlines()
    assert line.startswith(
        "scaler: error: alarm 'workers-backlog' (AutoScalingGroupName=workers) matches 3 groups "
        "of the policy, and scaler will not guess which: "
    )
    for candidate in (
        "(scaler's account)/us-east-1/workers (group workers-home)",
        f"{A}/eu-west-1/workers (group workers-a)",
        f"{B}/us-west-2/workers (group workers-b)",
    ):
        assert candidate in line
    assert line.endswith(
        "the alarm does not say its account or region: send the notification "
        "as CloudWatch sends it (its AlarmArn names the account and region)"
    )


def test_the_enrich_lambda_pages_account_bs_group_for_account_bs_alarm(
    clients: Clients, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Lambda SNS event carrying B's alarm: B's group and diagnosis in the invocation's
    result; the same alarm saying nothing of where: no group, the candidates named."""
    env = {"SCALER_POLICY": str(policy)}

    def invoke(message: dict[str, Any]) -> dict[str, Any]:
        envelope = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(message)}
        event = {"Records": [{"EventSource": "aws:sns", "Sns": envelope}]}
        return run_invocation(event, Context(), clients=clients, environ=env, now=NOW)

    from_b = invoke(alarm(B))
    assert from_b["group"] == "workers-b"
    assert from_b["diagnosis_unavailable"] is None
    assert from_b["summary"].startswith("workers-b: ")
    unsaid = invoke(alarm(None))
    assert unsaid["group"] is None
    assert (
        "matches 3 groups of the policy, and scaler will not guess"
        in (unsaid["diagnosis_unavailable"])
    )
    capsys.readouterr()


def test_a_composite_alarm_in_account_b_is_read_there(
    aws: LocalAws,
    clients: Clients,
    policy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A composite alarm's children are where it is: DescribeAlarms through B's role in
    us-west-2 finds the child on B's `workers`, so B's group (scaler's own account has none)."""
    in_b = clients_in(clients, PLACES["workers-b"])
    in_b.cloudwatch.put_metric_alarm(
        AlarmName="workers-in-service-low",
        Namespace="AWS/AutoScaling",
        MetricName="GroupInServiceInstances",
        Dimensions=[{"Name": "AutoScalingGroupName", "Value": "workers"}],
        Statistic="Minimum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
    )
    composite = {
        **alarm(B),
        "AlarmName": "workers-degraded",
        "AlarmArn": f"arn:aws:cloudwatch:us-west-2:{B}:alarm:workers-degraded",
        "AlarmRule": 'ALARM("workers-in-service-low")',
        "Trigger": None,
    }
    path = tmp_path / "composite.json"
    path.write_text(json.dumps(composite))
    code, shown, err = enrich(aws, policy, path, capsys)
    assert (code, err) == (EXIT_OK, "")
    assert (shown["alarm"]["kind"], shown["group"]) == ("composite", "workers-b")
