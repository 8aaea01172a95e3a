"""Group state from the Auto Scaling API of the local AWS: sizes, type, errors per group."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from scaler.aws import Clients, RetryPolicy
from scaler.models import GroupError, GroupState
from scaler.sources.autoscaling import DESCRIBE_BATCH, read_group_states

FAST = RetryPolicy(max_attempts=3, max_total_s=5, initial_backoff_s=0.001, max_backoff_s=0.005)
AMI = "ami-12c6146b"


def make_template(clients: Clients, name: str, instance_type: str) -> str:
    """A launch template; returns its id."""
    data: Any = {"InstanceType": instance_type, "ImageId": AMI}
    answer = clients.ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)
    return answer["LaunchTemplate"]["LaunchTemplateId"]


def make_group(clients: Clients, name: str, desired: int = 2, **spec: Any) -> None:
    """An ASG in one zone; `spec` says how it launches (template, mixed policy, config)."""
    clients.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=1,
        MaxSize=8,
        DesiredCapacity=desired,
        AvailabilityZones=["us-east-1a"],
        **spec,
    )


def counting(clients: Clients, event: str) -> list[int]:
    """Count the requests a client sends for one operation."""
    sent: list[int] = []
    clients.autoscaling.meta.events.register(event, lambda **_: sent.append(1))
    return sent


def test_launch_template_group_reports_sizes_and_type(clients: Clients) -> None:
    """Desired, min, max, in-service and the template's instance type come back."""
    template_id = make_template(clients, "workers-template", "m5.xlarge")
    make_group(clients, "workers", desired=3, LaunchTemplate={"LaunchTemplateId": template_id})
    state = read_group_states(clients.autoscaling, clients.ec2, ["workers"], retry=FAST)["workers"]
    assert isinstance(state, GroupState)
    assert (state.desired, state.min_size, state.max_size) == (3, 1, 8)
    assert state.in_service == 3
    assert state.instance_type == "m5.xlarge"
    assert state.launch_template is not None
    assert state.launch_template["id"] == template_id
    assert state.activities_in_progress == 0


def test_missing_group_is_an_error_and_the_others_are_fine(clients: Clients) -> None:
    """A group that does not exist gets a GroupError naming it; the rest are read."""
    make_template(clients, "workers-template", "m5.xlarge")
    make_group(clients, "workers", LaunchTemplate={"LaunchTemplateName": "workers-template"})
    states = read_group_states(clients.autoscaling, clients.ec2, ["workers", "ghost"], retry=FAST)
    assert isinstance(states["workers"], GroupState)
    ghost = states["ghost"]
    assert isinstance(ghost, GroupError)
    assert "'ghost'" in ghost.error
    assert "auto_scaling_group" in ghost.error
    assert not ghost.retryable


def test_mixed_instances_policy_override_type_wins(clients: Clients) -> None:
    """With one override type in a mixed-instances policy, that type is the group's."""
    make_template(clients, "mixed-template", "m5.xlarge")
    make_group(
        clients,
        "mixed",
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateName": "mixed-template"},
                "Overrides": [{"InstanceType": "m5d.xlarge"}],
            }
        },
    )
    state = read_group_states(clients.autoscaling, clients.ec2, ["mixed"], retry=FAST)["mixed"]
    assert isinstance(state, GroupState)
    assert state.instance_type == "m5d.xlarge"


def test_launch_configuration_type(clients: Clients) -> None:
    """A group on a launch configuration reads its type from the configuration."""
    clients.autoscaling.create_launch_configuration(
        LaunchConfigurationName="old-style", ImageId=AMI, InstanceType="c5.large"
    )
    make_group(clients, "legacy", LaunchConfigurationName="old-style")
    state = read_group_states(clients.autoscaling, clients.ec2, ["legacy"], retry=FAST)["legacy"]
    assert isinstance(state, GroupState)
    assert state.instance_type == "c5.large"
    assert state.launch_template is None


def test_groups_are_described_in_batches(clients: Clients) -> None:
    """Sixty groups cost two DescribeAutoScalingGroups calls, not sixty."""
    make_template(clients, "shared-template", "m5.xlarge")
    names = [f"group-{i}" for i in range(DESCRIBE_BATCH + 10)]
    for name in names:
        make_group(
            clients, name, desired=0, LaunchTemplate={"LaunchTemplateName": "shared-template"}
        )
    described = counting(clients, "before-call.autoscaling.DescribeAutoScalingGroups")
    templates: list[int] = []
    clients.ec2.meta.events.register(
        "before-call.ec2.DescribeLaunchTemplateVersions", lambda **_: templates.append(1)
    )
    states = read_group_states(
        clients.autoscaling, clients.ec2, names, include_activity=False, retry=FAST
    )
    assert len(described) == 2
    assert len(templates) == 1  # one lookup for the template all groups share
    assert all(
        isinstance(s, GroupState) and s.instance_type == "m5.xlarge" for s in states.values()
    )


def test_instance_refreshes_are_read_for_every_group(clients: Clients) -> None:
    """Each group's refreshes are read (the local AWS answers: none running)."""
    make_template(clients, "t-template", "m5.xlarge")
    for name in ("a", "b"):
        make_group(clients, name, LaunchTemplate={"LaunchTemplateName": "t-template"})
    asked: list[str] = []
    clients.autoscaling.meta.events.register(
        "before-call.auto-scaling.DescribeInstanceRefreshes",
        lambda **_: asked.append("DescribeInstanceRefreshes"),
    )
    states = read_group_states(clients.autoscaling, clients.ec2, ["a", "b"], retry=FAST)
    assert all(
        isinstance(s, GroupState) and not s.instance_refresh_in_progress for s in states.values()
    )
    assert asked == ["DescribeInstanceRefreshes"] * 2


def test_throttled_describe_marks_its_groups_retryable(clients: Clients) -> None:
    """Throttled past the retry budget: every group of the batch is a retryable GroupError."""
    make_template(clients, "t-template", "m5.xlarge")
    make_group(clients, "a", LaunchTemplate={"LaunchTemplateName": "t-template"})

    def throttle(**_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "Throttling", "Message": "Rate exceeded"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "DescribeAutoScalingGroups",
        )

    clients.autoscaling.meta.events.register(
        "before-call.autoscaling.DescribeAutoScalingGroups", throttle
    )
    states = read_group_states(clients.autoscaling, clients.ec2, ["a", "b"], retry=FAST)
    for name in ("a", "b"):
        error = states[name]
        assert isinstance(error, GroupError)
        assert error.retryable
        assert "autoscaling:DescribeAutoScalingGroups" in error.error


def test_denied_template_lookup_fails_only_the_groups_that_need_it(clients: Clients) -> None:
    """AccessDenied on DescribeLaunchTemplateVersions fails the template group, not the other."""
    make_template(clients, "t-template", "m5.xlarge")
    make_group(clients, "templated", LaunchTemplate={"LaunchTemplateName": "t-template"})
    clients.autoscaling.create_launch_configuration(
        LaunchConfigurationName="lc", ImageId=AMI, InstanceType="c5.large"
    )
    make_group(clients, "configured", LaunchConfigurationName="lc")

    def deny(**_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "UnauthorizedOperation", "Message": "no"},
                "ResponseMetadata": {"HTTPStatusCode": 403},
            },
            "DescribeLaunchTemplateVersions",
        )

    clients.ec2.meta.events.register("before-call.ec2.DescribeLaunchTemplateVersions", deny)
    states = read_group_states(
        clients.autoscaling, clients.ec2, ["templated", "configured"], retry=FAST
    )
    failed = states["templated"]
    assert isinstance(failed, GroupError)
    assert "ec2:DescribeLaunchTemplateVersions for group 'templated'" in failed.error
    assert isinstance(states["configured"], GroupState)


@pytest.mark.parametrize(
    ("version", "lookups_over_two_reads"),
    [
        ("1", 1),  # a numbered version never changes: read once per client
        ("$Latest", 2),  # may move between ticks: read every time
        ("$Default", 2),
    ],
)
def test_numbered_template_versions_are_read_once_per_client(
    clients: Clients, version: str, lookups_over_two_reads: int
) -> None:
    """Two ticks on one set of clients (a `--every` loop, a warm Lambda) ask EC2 once for 1."""
    template_id = make_template(clients, "w-template", "m5.xlarge")
    make_group(clients, "w", LaunchTemplate={"LaunchTemplateId": template_id, "Version": version})
    templates: list[int] = []
    clients.ec2.meta.events.register(
        "before-call.ec2.DescribeLaunchTemplateVersions", lambda **_: templates.append(1)
    )
    for _ in range(2):
        state = read_group_states(
            clients.autoscaling, clients.ec2, ["w"], include_activity=False, retry=FAST
        )["w"]
        assert isinstance(state, GroupState) and state.instance_type == "m5.xlarge"
    assert len(templates) == lookups_over_two_reads


def test_a_group_moved_to_a_new_numbered_version_reads_its_type(clients: Clients) -> None:
    """The memory is per version: moving the group to version 2 reads version 2's type."""
    template_id = make_template(clients, "w-template", "m5.xlarge")
    make_group(clients, "w", LaunchTemplate={"LaunchTemplateId": template_id, "Version": "1"})
    data: Any = {"InstanceType": "c5.2xlarge", "ImageId": AMI}
    clients.ec2.create_launch_template_version(
        LaunchTemplateId=template_id, LaunchTemplateData=data
    )
    types = []
    for version in ("1", "2", "1"):
        clients.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName="w",
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": version},
        )
        state = read_group_states(
            clients.autoscaling, clients.ec2, ["w"], include_activity=False, retry=FAST
        )["w"]
        assert isinstance(state, GroupState)
        types.append(state.instance_type)
    assert types == ["m5.xlarge", "c5.2xlarge", "m5.xlarge"]
