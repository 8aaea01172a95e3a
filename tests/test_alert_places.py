"""Where an alarm fired, and the group it names there: one ASG name in several accounts and regions.

Tables of alarm payloads (SNS, EventBridge, Lambda action, cross-account metric math,
Alertmanager) against one policy with `workers` in scaler's own account and in two other
accounts and two regions: the group each names, or the error that says why none or which.
The same alarms through `scaler enrich` on the local AWS are in tests/test_enrich_places.py.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from scaler.alerts.match import group_for_alarm
from scaler.alerts.parse import parse_alarm, parse_document
from scaler.alerts.settings import DEFAULT_LABELS
from scaler.errors import InputError
from scaler.policy import parse_policy

A, B, OWN, STRANGER = "111111111111", "222222222222", "123456789012", "999999999999"
HOME_REGION = "us-east-1"  # scaler's clients' region: where a group naming none is
POLICY = parse_policy(
    f"""
accounts:
  "{A}": {{role_arn: "arn:aws:iam::{A}:role/scaler-target"}}
  "{B}": {{role_arn: "arn:aws:iam::{B}:role/scaler-target"}}
groups:
  - {{name: workers-home, auto_scaling_group: workers, queue: jobs}}
  - {{name: workers-a, auto_scaling_group: workers, queue: jobs, account: "{A}", region: eu-west-1}}
  - {{name: workers-b, auto_scaling_group: workers, queue: jobs, account: "{B}", region: us-west-2}}
  - {{name: workers-b-eu, auto_scaling_group: workers, queue: jobs, account: "{B}",
      region: eu-west-1}}
""",
    "policy.yaml",
)
AT = "2026-03-02T11:26:00.000+0000"


def arn(account: str, region: str) -> str:
    return f"arn:aws:cloudwatch:{region}:{account}:alarm:workers-backlog"


def sns(*, dims: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    """The SNS alarm message, with `fields` (AlarmArn, AWSAccountId, Region) as given."""
    dims = dims or {"AutoScalingGroupName": "workers"}
    return {
        "AlarmName": "workers-backlog",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed",
        "StateChangeTime": AT,
        "Trigger": {"Dimensions": [{"name": k, "value": v} for k, v in dims.items()]},
        **fields,
    }


def eventbridge(in_account: str, in_region: str, /, **over: Any) -> dict[str, Any]:
    """The EventBridge event of an alarm in `in_account` and `in_region`; `over` replaces fields."""
    return {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "account": in_account,
        "region": in_region,
        "time": "2026-03-02T11:26:00Z",
        "resources": [arn(in_account, in_region)],
        "detail": {
            "alarmName": "workers-backlog",
            "state": {"value": "ALARM", "reason": "Threshold Crossed", "timestamp": AT},
            "configuration": {
                "metrics": [
                    {"metricStat": {"metric": {"dimensions": {"AutoScalingGroupName": "workers"}}}}
                ]
            },
        },
        **over,
    }


def lambda_action(account: str, region: str) -> dict[str, Any]:
    detail = eventbridge(account, region)["detail"]
    return {
        "source": "aws.cloudwatch",
        "alarmArn": arn(account, region),
        "accountId": account,
        "region": region,
        "time": AT,
        "alarmData": detail,
    }


def cross_account(monitoring: str, source: str, region: str) -> dict[str, Any]:
    """A metric-math alarm in the monitoring account on a source account's queue."""
    metric = {"Dimensions": [{"name": "QueueName", "value": "jobs"}], "MetricName": "m"}
    return sns(
        AlarmArn=arn(monitoring, region),
        Trigger={
            "Metrics": [
                {"Id": "e1", "Expression": "m1 * 2", "ReturnData": True},
                {"Id": "m1", "AccountId": source, "MetricStat": {"Metric": metric}},
            ]
        },
    )


def alertmanager(**labels: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "groupKey": "{}:{alertname='WorkersBacklog'}",
        "commonLabels": {"alertname": "WorkersBacklog", **labels},
        "alerts": [{"labels": {}, "startsAt": "2026-03-02T11:26:00Z"}],
    }


def match(document: dict[str, Any], own: str = OWN) -> str:
    alarm = parse_document(document)
    group = group_for_alarm(
        alarm,
        POLICY,
        labels=DEFAULT_LABELS,
        default_region=HOME_REGION,
        own_account=lambda: own,
    )
    return group.name


@pytest.mark.parametrize(
    ("document", "group"),
    [
        (sns(AlarmArn=arn(A, "eu-west-1")), "workers-a"),
        (sns(AlarmArn=arn(B, "us-west-2")), "workers-b"),
        (sns(AlarmArn=arn(B, "eu-west-1")), "workers-b-eu"),
        (sns(AlarmArn=arn(OWN, HOME_REGION)), "workers-home"),
        # The classic message's Region is a display name: the ARN says where.
        (sns(AlarmArn=arn(B, "us-west-2"), AWSAccountId=B, Region="US West (Oregon)"), "workers-b"),
        (sns(AlarmArn=arn(A, "eu-west-1"), dims={"QueueName": "jobs"}), "workers-a"),
        (eventbridge(A, "eu-west-1"), "workers-a"),
        (eventbridge(OWN, HOME_REGION), "workers-home"),
        (lambda_action(B, "us-west-2"), "workers-b"),
        (lambda_action(B, "eu-west-1"), "workers-b-eu"),
        # An alarm in the monitoring account (scaler's) on account B's queue: B's group.
        (cross_account(OWN, B, "us-west-2"), "workers-b"),
        (cross_account(OWN, A, "eu-west-1"), "workers-a"),
        (alertmanager(asg="workers", account=A, region="eu-west-1"), "workers-a"),
        (alertmanager(queue="jobs", account=B, region="eu-west-1"), "workers-b-eu"),
        (alertmanager(asg="workers", region="us-west-2"), "workers-b"),  # the only one there
        (alertmanager(asg="workers", account=OWN), "workers-home"),
        (alertmanager(group="workers-b"), "workers-b"),  # a group's own name needs no place
    ],
)
def test_an_alarm_names_the_group_where_it_fired(document: dict[str, Any], group: str) -> None:
    """One ASG name in four places: the alarm's account and region pick the group."""
    assert match(document) == group


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            sns(),
            "matches 4 groups of the policy, and scaler will not guess which: "
            f"(scaler's account)/us-east-1/workers (group workers-home), "
            f"{A}/eu-west-1/workers (group workers-a), {B}/us-west-2/workers (group workers-b), "
            f"{B}/eu-west-1/workers (group workers-b-eu); the alarm does not say its account or "
            "region: send the notification as CloudWatch sends it (its AlarmArn",
        ),
        (
            sns(AWSAccountId=B),  # an old message: no AlarmArn, so no region
            f"matches 2 groups of the policy in account {B}, and scaler will not guess which: "
            f"{B}/us-west-2/workers (group workers-b), {B}/eu-west-1/workers (group "
            "workers-b-eu); the alarm does not say its region",
        ),
        (
            alertmanager(asg="workers"),
            "the alarm does not say its account or region: add the labels alerts.labels names "
            "for them (default `account`, `region`)",
        ),
        (
            sns(AlarmArn=arn(STRANGER, HOME_REGION)),
            f"fired in account {STRANGER}, region us-east-1, where the policy has no group of "
            f"that name; the groups of that name: {OWN}/us-east-1/workers (group workers-home), "
            f"{A}/eu-west-1/workers",
        ),
        (
            sns(AlarmArn=arn(A, "us-west-2")),
            f"fired in account {A}, region us-west-2, where the policy has no group",
        ),
        (
            alertmanager(group="workers-a", account=B),
            f"fired in account {B}, where the policy has no group of that name; the groups of "
            f"that name: {A}/eu-west-1/workers (group workers-a)",
        ),
        (
            sns(AlarmArn=arn(B, "us-west-2"), dims={"AutoScalingGroupName": "other"}),
            f"(AutoScalingGroupName=other) names no group of the policy in account {B}, region "
            "us-west-2: match an AutoScalingGroupName or QueueName dimension; groups: "
            "workers-home (ASG workers, queue jobs)",
        ),
        (
            alertmanager(asg="workers", account="not-an-account"),
            "label account: 'not-an-account' is not an account id (12 digits)",
        ),
        (
            alertmanager(asg="workers", region="EU (Ireland)"),
            "label region: 'EU (Ireland)' is not a region code like us-east-1: alerts.labels "
            "reads it as the group's region; if it means something else, set alerts.labels "
            "without it",
        ),
    ],
)
def test_an_alarm_that_cannot_say_which_group_is_an_error_naming_them(
    document: dict[str, Any], message: str
) -> None:
    """None there, or several and the alarm silent on what tells them apart: InputError, never
    the first group of the name."""
    with pytest.raises(InputError) as err:
        match(document)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("document", "account", "region"),
    [
        (
            sns(AlarmArn=arn(B, "us-west-2"), AWSAccountId=B, Region="US West (Oregon)"),
            B,
            "us-west-2",
        ),
        (sns(AWSAccountId=A, Region="EU (Ireland)"), A, None),
        (sns(), None, None),
        (sns(AlarmArn=f"arn:aws-cn:cloudwatch:cn-north-1:{A}:alarm:x:y"), A, "cn-north-1"),
        (sns(AlarmArn="not an arn"), None, None),
        (eventbridge(A, "eu-west-1"), A, "eu-west-1"),
        (eventbridge(A, "eu-west-1", resources=[]), A, "eu-west-1"),
        (lambda_action(B, "us-west-2"), B, "us-west-2"),
        (
            {
                "Type": "Notification",
                "MessageId": "1",
                "Message": json.dumps(sns(AlarmArn=arn(A, "eu-west-1"))),
            },
            A,
            "eu-west-1",
        ),
        (alertmanager(account=A), None, None),  # labels are read where the policy names them
    ],
)
def test_where_each_shape_says_it_fired(
    document: dict[str, Any], account: str | None, region: str | None
) -> None:
    """The ARN's account and region, else the fields that repeat them; None when unsaid."""
    alarm = parse_alarm(json.dumps(document))
    assert (alarm.account, alarm.region) == (account, region)


def test_a_cross_account_metric_carries_its_account() -> None:
    """`AccountId` on a metric-math alarm's metric: where that metric (and its group) is."""
    alarm = parse_document(cross_account(OWN, B, "us-west-2"))
    assert (alarm.account, [m.account for m in alarm.metrics]) == (OWN, [B])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            sns(AlarmArn=arn(A, "eu-west-1"), AWSAccountId=B),
            f"AWSAccountId: account {B} contradicts",
        ),
        (eventbridge(A, "eu-west-1", region="us-west-2"), "region: region us-west-2 contradicts"),
        (eventbridge(A, "eu-west-1", account="12345"), "account: '12345' is not an account id"),
        (eventbridge(A, "eu-west-1", region="EU (Ireland)"), "'EU (Ireland)' is not a region code"),
        (sns(AWSAccountId=7), "AWSAccountId: '7' is not an account id"),
        (sns(AWSAccountId="١٢٣٤٥٦٧٨٩٠١٢"), "is not an account id"),  # digits, not ASCII ones
        (
            cross_account(OWN, "acct\n", "us-west-2"),
            "Trigger.Metrics[1].AccountId: 'acct\\\\x0a' is not an account id",
        ),
    ],
)
def test_a_garbled_or_contradictory_place_is_refused(
    document: dict[str, Any], message: str
) -> None:
    """A place that is not an account id or region code, or that contradicts the ARN: one line."""
    with pytest.raises(InputError) as err:
        parse_alarm(json.dumps(document), "alarm.json")
    assert message in str(err.value)
    assert str(err.value).startswith("alarm.json")


@pytest.mark.parametrize(
    ("document", "asked"),
    [
        (sns(AlarmArn=arn(OWN, HOME_REGION)), 1),  # is this scaler's account? asked, once
        (sns(AlarmArn=arn(A, "eu-west-1")), 0),  # listed under accounts: not scaler's own
        (sns(), 0),  # no account said: nothing to compare
        (sns(AlarmArn=arn(STRANGER, "us-west-2")), 0),  # no group of the name in us-west-2 at home
    ],
)
def test_scalers_own_account_is_asked_only_when_it_decides(
    document: dict[str, Any], asked: int
) -> None:
    """GetCallerIdentity only for an alarm whose account might be scaler's own, at most once."""
    calls: list[int] = []

    def own() -> str:
        calls.append(1)
        return OWN

    alarm = parse_document(document)
    with contextlib.suppress(InputError):  # some rows name no group: the asking is the point
        group_for_alarm(alarm, POLICY, default_region=HOME_REGION, own_account=own)
    assert len(calls) == asked
