"""Live advice end to end: a seeded incident on the local AWS, read back and diagnosed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from scaler.aws import Clients
from scaler.cli import EXIT_FAILED, EXIT_OK, main
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.live import advise, as_of_data
from scaler.policy import GroupPolicy, Policy
from scaler.signals import Window
from scaler.sim import scenarios

INCIDENT = scenarios.incident()
ONSET = INCIDENT.throttle_onset
assert ONSET is not None
GROUP = GroupPolicy(
    name="crash-processor",
    auto_scaling_group="crash-processor-asg",
    queue="crash-reports",
    min_size=2,
    max_size=40,
)
POLICY = Policy(groups=[GROUP])


def _seed(clients: Clients, *, minutes_after_onset: int = 8) -> Window:
    """The incident up to `minutes_after_onset`, written to the local AWS ending just before now."""
    end = ONSET + timedelta(minutes=minutes_after_onset)
    length = int((end - INCIDENT.window.start).total_seconds() // 60)
    window = INCIDENT.window.head(length).model_copy(update={"group": GROUP.name})
    seed_local_aws(
        clients,
        window,
        asg_name=GROUP.asg_name,
        queue_name=GROUP.queue_name,
        min_size=2,
        max_size=40,
        now=window.end + timedelta(minutes=1),
    )
    return window


def test_advise_finds_the_seeded_incident_in_one_metric_call(clients: Clients) -> None:
    """Minutes after the throttle a tick names iowait_bound, asks for more, and ranks types."""
    window = _seed(clients)
    tick = advise(POLICY, clients, now=window.end + timedelta(minutes=1))
    assert tick.errors == []
    assert tick.metric_calls == 1
    (group,) = tick.groups
    assert group.state.instance_type == "m5.xlarge"
    assert group.state.desired == 8
    assert group.data_complete and group.data_age_minutes == 0
    kinds = {f.kind for f in group.advice.findings}
    assert {"iowait_bound", "backlog_growing", "ebs_burst_exhaustion"} <= kinds
    assert group.proposal is not None and group.proposal > group.state.desired
    assert group.instance_type == "m5d.xlarge"
    (rec,) = [r for r in group.advice.recommendations if r.desired_capacity is not None]
    strategies = {a.strategy.value for a in rec.alternatives}
    assert {"local_nvme", "sustained_ebs", "same_type"} <= strategies


def test_burst_is_named_before_the_throttle(clients: Clients) -> None:
    """Half an hour before the throttle, the only finding is the burst warning."""
    window = _seed(clients, minutes_after_onset=-30)
    tick = advise(POLICY, clients, now=window.end + timedelta(minutes=1))
    (group,) = tick.groups
    assert [f.kind for f in group.advice.findings] == ["ebs_burst_exhaustion"]
    assert "runs out in about" in group.advice.findings[0].summary


def test_stale_data_is_incomplete_and_said_so(clients: Clients) -> None:
    """A tick 20 minutes after the newest datapoint judges that minute and calls it stale."""
    window = _seed(clients)
    tick = advise(POLICY, clients, now=window.end + timedelta(minutes=21))
    (group,) = tick.groups
    assert group.as_of == window.end
    assert group.data_age_minutes == 20
    assert not group.data_complete
    assert any("20 minutes old" in note for note in group.notes)


def test_a_missing_group_is_an_error_and_the_others_are_advised(clients: Clients) -> None:
    """A policy group with no ASG is reported by name; the seeded group is still advised."""
    window = _seed(clients)
    policy = Policy(groups=[GROUP, GroupPolicy(name="ghost", queue="ghost-queue")])
    tick = advise(policy, clients, now=window.end + timedelta(minutes=1))
    assert [g.group for g in tick.groups] == ["crash-processor"]
    assert tick.metric_queries == 20  # the missing group's metrics are not fetched
    (error,) = tick.errors
    assert error.group == "ghost"
    assert "no Auto Scaling group named 'ghost'" in error.error
    assert tick.advice().errors == [error]


def test_no_core_data_gives_no_proposal(clients: Clients) -> None:
    """Without queue and instance data there is no capacity opinion, never a scale-in."""
    clients.autoscaling.create_launch_configuration(
        LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="m5.xlarge"
    )
    clients.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="quiet",
        LaunchConfigurationName="lc",
        MinSize=0,
        MaxSize=4,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
    )
    tick = advise(Policy(groups=[GroupPolicy(name="quiet")]), clients, now=ONSET)
    (group,) = tick.groups
    assert group.state.instance_type == "m5.xlarge"
    assert group.as_of is None and group.proposal is None and not group.data_complete


def test_as_of_is_the_last_minute_with_every_core_signal() -> None:
    """Trailing minutes where CloudWatch has not yet published the queue are cut off."""
    window = INCIDENT.window.head(60)
    lagging = dict(window.series)
    lagging["queue_deleted"] = lagging["queue_deleted"].copy()
    lagging["queue_deleted"][-3:] = float("nan")
    judged, as_of = as_of_data(window.model_copy(update={"series": lagging}))
    assert judged.length == 57
    assert as_of == window.time_at(56)


def test_advise_command_prints_json_and_exits_1_when_a_group_fails(
    clients: Clients,
    aws: LocalAws,
    tmp_path: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`scaler advise --endpoint-url` prints the SIGNALS.md object; a missing group exits 1."""
    _seed(clients)
    policy = tmp_path / "p.yaml"  # type: ignore[operator]
    policy.write_text(
        "groups:\n"
        "  - name: crash-processor\n"
        "    auto_scaling_group: crash-processor-asg\n"
        "    queue: crash-reports\n"
        "  - name: ghost\n"
    )
    code = main(["advise", "--policy", str(policy), "--endpoint-url", aws.endpoint_url])
    text = capsys.readouterr().out
    assert code == EXIT_FAILED
    assert "crash-processor: ASG crash-processor-asg desired 8" in text
    assert "Groups that could not be evaluated" in text and "ghost" in text
    args = ["advise", "--policy", str(policy), "--endpoint-url", aws.endpoint_url]
    assert main([*args, "--format", "json"]) == EXIT_FAILED
    advice = json.loads(capsys.readouterr().out)
    assert set(advice) >= {"findings", "recommendations"}
    assert advice["errors"][0]["group"] == "ghost"


def test_demo_diagnoses_the_incident_live(capsys: pytest.CaptureFixture[str]) -> None:
    """`scaler demo` seeds its own local AWS and shows the warning, then the diagnosis."""
    assert main(["demo"]) == EXIT_OK
    out = capsys.readouterr().out
    before, after = out.split("== tick at")[1:]
    assert "30 min before the throttle" in before and "ebs_burst_exhaustion" in before
    assert "iowait_bound" not in before
    assert "8 min after the throttle" in after and "iowait_bound" in after
    assert "local NVMe" in after and "1 GetMetricData call" in after
