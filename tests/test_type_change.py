"""Instance type changes: the plan's rails, dry-run, and apply against a real group on moto."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from scaler.aws import Clients
from scaler.control import (
    NEW_VERSION,
    Actuator,
    AuditRecord,
    DynamoStateStore,
    GroupHistory,
    Rail,
    RailSettings,
    SqliteStateStore,
    StateStore,
    TypeChangeDecision,
    TypeChanger,
    apply_rails,
    create_table,
    plan_type_change,
    type_change_tick_id,
)
from scaler.control.settings import TypeChangeSettings
from scaler.errors import InputError
from scaler.models import GroupState
from scaler.policy import GroupPolicy
from scaler.sources.autoscaling import read_group_states
from tests.aws_faults import MUTATING_AUTOSCALING, CallCounter, Crash, crash_after, inject_fault
from tests.helpers import FAST_RETRY

ASG = "workers"
OLD, NEW = "m5.xlarge", "m5d.xlarge"
NOW = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
TICK = "tick-2026-03-01T12:00:00Z"
APPLY = TypeChangeSettings(apply=True)
RAILS = RailSettings()
MUTATING_EC2 = frozenset({"CreateLaunchTemplateVersion", "CreateLaunchTemplate", "RunInstances"})


def state(**changes: Any) -> GroupState:
    """A healthy three-instance group pinned to version 1 of a launch template, with `changes`."""
    base = GroupState(
        name=ASG,
        desired=3,
        min_size=1,
        max_size=10,
        in_service=3,
        instance_type=OLD,
        launch_template={"id": "lt-0123", "name": "workers-lt", "version": "1"},
    )
    return base.model_copy(update=changes)


def plan(
    group: GroupState,
    settings: TypeChangeSettings = APPLY,
    *,
    history: GroupHistory | None = None,
    kill_switch_env: bool = False,
    rails: RailSettings = RAILS,
) -> TypeChangeDecision:
    """The plan for moving `group` to NEW at NOW."""
    return plan_type_change(
        group,
        NEW,
        settings,
        now=NOW,
        kill_switch_env=kill_switch_env,
        rails=rails,
        history=history or GroupHistory(group=group.name),
        tick_id=TICK,
    )


# --- the plan (pure) ---------------------------------------------------------------------------


def test_settings_defaults_are_the_documented_safe_ones() -> None:
    """Opt-in, 90% healthy, 5 min warmup, checkpoints 25/50/100 with 10 min pauses, rollback on."""
    s = TypeChangeSettings()
    assert (s.apply, s.allow_single_instance) == (False, False)
    assert s.min_healthy_percentage == 90
    assert s.instance_warmup_seconds == 300
    assert s.checkpoint_percentages == [25, 50, 100]
    assert s.checkpoint_delay_seconds == 600
    assert (s.auto_rollback, s.skip_matching) == (True, True)
    assert "local" in (TypeChangeSettings.model_fields["apply"].description or "")


@pytest.mark.parametrize("bad", [[], [50, 25, 100], [25, 25, 100], [25, 50], [0, 100], [50, 101]])
def test_checkpoints_must_rise_to_100(bad: list[int]) -> None:
    """Checkpoint percentages that do not rise strictly to a final 100 are refused."""
    with pytest.raises(ValidationError, match="checkpoint_percentages"):
        TypeChangeSettings(checkpoint_percentages=bad)


def test_policy_reads_a_type_change_block() -> None:
    """GroupPolicy carries type_change; unknown keys in it are refused."""
    policy = GroupPolicy.model_validate(
        {"name": "w", "type_change": {"apply": True, "min_healthy_percentage": 100}}
    )
    assert policy.type_change.apply is True
    assert policy.type_change.min_healthy_percentage == 100
    assert GroupPolicy(name="w").type_change == TypeChangeSettings()
    with pytest.raises(ValidationError):
        GroupPolicy.model_validate({"name": "w", "type_change": {"aply": True}})


def test_plan_names_the_exact_version_and_safe_preferences() -> None:
    """A clear plan makes two calls: a version based on the group's, and a refresh onto it."""
    settings = TypeChangeSettings(apply=True, min_healthy_percentage=95, checkpoint_delay_seconds=6)
    decision = plan(state(), settings)
    assert decision.held_by == []
    create, start = decision.calls
    assert (create.service, create.operation) == ("ec2", "CreateLaunchTemplateVersion")
    assert create.params["LaunchTemplateId"] == "lt-0123"
    assert create.params["SourceVersion"] == "1"
    assert create.params["LaunchTemplateData"] == {"InstanceType": NEW}
    description = str(create.params["VersionDescription"])
    assert "scaler" in description and TICK in description
    assert (start.service, start.operation) == ("autoscaling", "StartInstanceRefresh")
    assert start.params["AutoScalingGroupName"] == ASG
    assert start.params["Strategy"] == "Rolling"
    assert start.params["DesiredConfiguration"] == {
        "LaunchTemplate": {"LaunchTemplateId": "lt-0123", "Version": NEW_VERSION}
    }
    assert start.params["Preferences"] == {
        "MinHealthyPercentage": settings.min_healthy_percentage,
        "InstanceWarmup": settings.instance_warmup_seconds,
        "CheckpointPercentages": settings.checkpoint_percentages,
        "CheckpointDelay": settings.checkpoint_delay_seconds,
        "AutoRollback": settings.auto_rollback,
        "SkipMatching": settings.skip_matching,
    }


def test_plan_uses_the_template_name_when_the_group_gives_no_id() -> None:
    """A group that names its template (no id) gets calls that name it too."""
    decision = plan(state(launch_template={"name": "workers-lt", "version": "4"}))
    create, start = decision.calls
    assert create.params["LaunchTemplateName"] == "workers-lt"
    assert "LaunchTemplateId" not in create.params
    assert start.params["DesiredConfiguration"] == {
        "LaunchTemplate": {"LaunchTemplateName": "workers-lt", "Version": NEW_VERSION}
    }


BLOCKED = {
    "single_instance": (state(desired=1, in_service=1), Rail.SINGLE_INSTANCE, "outage"),
    "refresh_running": (state(instance_refresh_in_progress=True), Rail.INSTANCE_REFRESH, "refresh"),
    "scaling_activity": (state(activities_in_progress=1), Rail.SCALING_ACTIVITY, "activity"),
    "same_type": (state(instance_type=NEW), Rail.SAME_TYPE, "nothing to do"),
    "launch_configuration": (state(launch_template=None), Rail.NO_LAUNCH_TEMPLATE, "template"),
    "mixed_instances": (state(mixed_instances=True), Rail.NO_LAUNCH_TEMPLATE, "mixed instances"),
    "latest": (
        state(launch_template={"id": "lt-0123", "version": "$Latest"}),
        Rail.UNPINNED_LAUNCH_TEMPLATE,
        "pin the group",
    ),
    "default": (
        state(launch_template={"id": "lt-0123", "version": "$Default"}),
        Rail.UNPINNED_LAUNCH_TEMPLATE,
        "roll",
    ),
}


@pytest.mark.parametrize("case", sorted(BLOCKED))
def test_each_blocking_rail_is_named_and_stops_both_calls(case: str) -> None:
    """A blocking rail means no call at all, its name in held_by and a note saying why."""
    group, rail, words = BLOCKED[case]
    decision = plan(group)
    assert decision.calls == []
    assert decision.held_by == [rail]
    assert any(words in note for note in decision.notes), decision.notes


def test_cooldown_after_a_recent_action_blocks() -> None:
    """An action inside rails.cooldown_seconds blocks; one just outside does not."""
    rails = RailSettings(cooldown_seconds=600)
    recent = GroupHistory(group=ASG, last_action_at=NOW - timedelta(seconds=599))
    held = plan(state(), history=recent, rails=rails)
    assert (held.calls, held.held_by) == ([], [Rail.COOLDOWN])
    old = GroupHistory(group=ASG, last_action_at=NOW - timedelta(seconds=600))
    assert plan(state(), history=old, rails=rails).held_by == []


@pytest.mark.parametrize(
    ("settings", "kill", "rail"),
    [
        (TypeChangeSettings(), False, Rail.TYPE_CHANGE_DISABLED),
        (APPLY, True, Rail.KILL_SWITCH),
    ],
)
def test_kill_switch_and_disabled_keep_the_calls_for_the_record(
    settings: TypeChangeSettings, kill: bool, rail: Rail
) -> None:
    """Kill switch and apply: false are named, and the calls stay so dry-run can show them."""
    decision = plan(state(), settings, kill_switch_env=kill)
    assert decision.held_by == [rail]
    assert len(decision.calls) == 2
    assert decision.kill_switch is kill
    assert decision.enabled is settings.apply


def test_policy_kill_switch_counts_like_the_environment() -> None:
    """rails.kill_switch in the policy holds a type change as the env variable does."""
    decision = plan(state(), rails=RailSettings(kill_switch=True))
    assert decision.kill_switch and Rail.KILL_SWITCH in decision.held_by


def test_single_instance_when_allowed_still_says_outage() -> None:
    """allow_single_instance lets a one-instance refresh through, and the plan says: outage."""
    settings = TypeChangeSettings(apply=True, allow_single_instance=True)
    decision = plan(state(desired=1, in_service=1), settings)
    assert len(decision.calls) == 2
    assert any("outage" in note for note in decision.notes)


def test_a_name_that_is_no_instance_type_is_an_input_error() -> None:
    """A malformed type name is refused before anything is planned."""
    with pytest.raises(InputError, match="instance type"):
        plan_type_change(
            state(),
            "m5d xlarge",
            APPLY,
            now=NOW,
            kill_switch_env=False,
            rails=RAILS,
            history=GroupHistory(group=ASG),
        )


@given(
    desired=st.integers(0, 5),
    refresh=st.booleans(),
    activities=st.integers(0, 2),
    version=st.sampled_from(["1", "7", "$Latest", "$Default"]),
    current=st.sampled_from([OLD, NEW, None]),
    template=st.booleans(),
    mixed=st.booleans(),
    allow_single=st.booleans(),
    seconds_since_action=st.one_of(st.none(), st.integers(0, 1200)),
)
def test_calls_are_planned_exactly_when_no_blocking_rail_holds(
    desired: int,
    refresh: bool,
    activities: int,
    version: str,
    current: str | None,
    template: bool,
    mixed: bool,
    allow_single: bool,
    seconds_since_action: int | None,
) -> None:
    """Whatever the group, calls exist iff nothing blocks, and every blocking fact is named."""
    group = state(
        desired=desired,
        instance_refresh_in_progress=refresh,
        activities_in_progress=activities,
        instance_type=current,
        launch_template={"id": "lt-1", "version": version} if template else None,
        mixed_instances=mixed,
    )
    last = None if seconds_since_action is None else NOW - timedelta(seconds=seconds_since_action)
    settings = TypeChangeSettings(apply=True, allow_single_instance=allow_single)
    decision = plan(group, settings, history=GroupHistory(group=ASG, last_action_at=last))
    expected = {
        Rail.INSTANCE_REFRESH: refresh,
        Rail.SCALING_ACTIVITY: activities > 0,
        Rail.SAME_TYPE: current == NEW,
        Rail.NO_LAUNCH_TEMPLATE: not template or mixed,
        Rail.UNPINNED_LAUNCH_TEMPLATE: template and not mixed and version.startswith("$"),
        Rail.SINGLE_INSTANCE: desired <= 1 and not allow_single,
        Rail.COOLDOWN: seconds_since_action is not None
        and seconds_since_action < RAILS.cooldown_seconds,
    }
    assert set(decision.held_by) == {rail for rail, holds in expected.items() if holds}
    assert bool(decision.calls) == (not decision.held_by)


# --- against the moto server -------------------------------------------------------------------


@pytest.fixture
def template_id(clients: Clients) -> str:
    """A launch template (version 1: OLD) and a 3-instance ASG pinned to version 1, on moto."""
    data: Any = {"ImageId": "ami-12c6146b", "InstanceType": OLD}
    template = clients.ec2.create_launch_template(
        LaunchTemplateName="workers-lt", LaunchTemplateData=data
    )["LaunchTemplate"]
    clients.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=ASG,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"},
        MinSize=1,
        MaxSize=10,
        DesiredCapacity=3,
        AvailabilityZones=["us-east-1a"],
    )
    return template["LaunchTemplateId"]


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clients: Clients) -> Iterator[StateStore]:
    """Each state store: a fresh SQLite file, and a fresh DynamoDB table on moto."""
    s: StateStore
    if request.param == "sqlite":
        s = SqliteStateStore(tmp_path / "state.db")
    else:
        create_table(clients.dynamodb, "scaler-state")
        s = DynamoStateStore(clients.dynamodb, "scaler-state", retry=FAST_RETRY)
    yield s
    s.close()


def read_group(clients: Clients) -> GroupState:
    """The group as scaler's Auto Scaling source reads it."""
    found = read_group_states(clients.autoscaling, clients.ec2, [ASG])[ASG]
    assert isinstance(found, GroupState), found
    return found


def versions(clients: Clients, template_id: str) -> dict[int, dict[str, Any]]:
    """Every version of the template on moto: number -> (data, description)."""
    answer = clients.ec2.describe_launch_template_versions(LaunchTemplateId=template_id)
    return {
        v["VersionNumber"]: {
            "type": v.get("LaunchTemplateData", {}).get("InstanceType"),
            "description": v.get("VersionDescription"),
        }
        for v in answer["LaunchTemplateVersions"]
    }


def expected_refresh(template_id: str, version: str, settings: TypeChangeSettings) -> Any:
    """The StartInstanceRefresh request a type change onto `version` must send, field by field."""
    return {
        "AutoScalingGroupName": ASG,
        "Strategy": "Rolling",
        "DesiredConfiguration": {
            "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": version}
        },
        "Preferences": {
            "MinHealthyPercentage": settings.min_healthy_percentage,
            "InstanceWarmup": settings.instance_warmup_seconds,
            "CheckpointPercentages": settings.checkpoint_percentages,
            "CheckpointDelay": settings.checkpoint_delay_seconds,
            "AutoRollback": settings.auto_rollback,
            "SkipMatching": settings.skip_matching,
        },
    }


def test_the_source_reads_a_pinned_template_group_the_plan_accepts(
    clients: Clients, template_id: str
) -> None:
    """read_group_states gives the template id, version 1 and OLD, so the plan is clear."""
    group = read_group(clients)
    assert group.launch_template == {"id": template_id, "name": "workers-lt", "version": "1"}
    assert (group.instance_type, group.mixed_instances) == (OLD, False)
    assert plan(group).held_by == []


def test_a_launch_configuration_group_is_held_by_no_launch_template(clients: Clients) -> None:
    """A group on a launch configuration (read from moto) is never changed; the note says why."""
    clients.autoscaling.create_launch_configuration(
        LaunchConfigurationName="old-lc", ImageId="ami-12c6146b", InstanceType=OLD
    )
    clients.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=ASG,
        LaunchConfigurationName="old-lc",
        MinSize=1,
        MaxSize=10,
        DesiredCapacity=3,
        AvailabilityZones=["us-east-1a"],
    )
    decision = plan(read_group(clients))
    assert (decision.calls, decision.held_by) == ([], [Rail.NO_LAUNCH_TEMPLATE])


@pytest.mark.parametrize(
    ("dry_run", "settings", "kill"),
    [(True, APPLY, False), (False, APPLY, True), (False, TypeChangeSettings(), False)],
    ids=["dry-run", "kill-switch", "apply-false"],
)
def test_dry_run_records_the_calls_and_makes_no_mutating_call(
    clients: Clients,
    template_id: str,
    store: StateStore,
    dry_run: bool,
    settings: TypeChangeSettings,
    kill: bool,
) -> None:
    """Dry-run, the kill switch and apply: false record both calls and send none of them."""
    autoscaling, ec2 = CallCounter(clients.autoscaling), CallCounter(clients.ec2)
    group = read_group(clients)
    decision = plan(group, settings, kill_switch_env=kill)
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=dry_run)
    result = changer.act(group, decision, tick_id=TICK, now=NOW)
    assert result.result == "dry-run"
    assert result.outcome.mode == "dry-run"
    assert result.calls == decision.calls
    assert [c.operation for c in result.calls] == [
        "CreateLaunchTemplateVersion",
        "StartInstanceRefresh",
    ]
    assert autoscaling.mutating == []
    assert [c for c in ec2.calls if c in MUTATING_EC2] == []
    assert set(versions(clients, template_id)) == {1}
    assert [r.phase for r in store.audit(ASG)] == ["outcome"]


def test_apply_creates_the_version_and_starts_the_exact_refresh(
    clients: Clients, template_id: str, store: StateStore
) -> None:
    """Apply makes version 2 with NEW on moto, then a refresh naming version 2 with safe prefs."""
    group = read_group(clients)
    decision = plan(group)
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=False)
    # moto's server has no StartInstanceRefresh: Stubber answers it and checks the exact request.
    with Stubber(clients.autoscaling) as stub:
        stub.add_response(
            "start_instance_refresh",
            {"InstanceRefreshId": "refresh-1"},
            expected_params=expected_refresh(template_id, "2", APPLY),
        )
        result = changer.act(group, decision, tick_id=TICK, now=NOW, evidence={"iowait": 41.0})
        stub.assert_no_pending_responses()
    assert result.result == "applied", result.outcome.notes
    assert (result.launch_template_version, result.instance_refresh_id) == (2, "refresh-1")
    made = versions(clients, template_id)
    assert made[1]["type"] == OLD
    assert made[2]["type"] == NEW
    assert TICK in made[2]["description"]
    create, start = result.calls
    assert create == decision.calls[0]
    assert start.params == expected_refresh(template_id, "2", APPLY)
    records = store.audit(ASG)
    assert [(r.phase, r.action) for r in records] == [
        ("intent", "instance_type"),
        ("outcome", "instance_type"),
    ]
    assert records[0].calls == decision.calls  # the intent names what it was about to do
    assert records[1] == result.outcome
    assert records[1].evidence == {"iowait": 41.0}
    # A refresh started: the cooldown runs from now, and desired capacity is untouched.
    history = store.history(ASG, since=NOW)
    assert (history.last_action_at, history.last_target) == (NOW, group.desired)
    summary = records[1].summary()
    assert f"type {OLD}->{NEW}" in summary and "StartInstanceRefresh(" in summary
    assert '"Version":"2"' in summary


def test_rerunning_the_same_tick_makes_no_second_call(
    clients: Clients, template_id: str, store: StateStore
) -> None:
    """A second act() for the same tick returns the first outcome and calls nothing."""
    group = read_group(clients)
    decision = plan(group)
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=False)
    ec2 = CallCounter(clients.ec2)
    # Stubber (moto lacks StartInstanceRefresh): one response only, so a second call would fail.
    with Stubber(clients.autoscaling) as stub:
        stub.add_response("start_instance_refresh", {"InstanceRefreshId": "refresh-1"})
        first = changer.act(group, decision, tick_id=TICK, now=NOW)
        again = changer.act(group, decision, tick_id=TICK, now=NOW + timedelta(seconds=20))
    assert first.result == "applied"
    assert again.duplicate and again.outcome == first.outcome
    assert ec2.count("CreateLaunchTemplateVersion") == 1
    assert set(versions(clients, template_id)) == {1, 2}


def test_a_type_change_and_a_capacity_action_share_a_tick(
    clients: Clients, template_id: str, store: StateStore
) -> None:
    """The same tick's capacity action is neither a duplicate of a type change nor held by it."""
    group = read_group(clients)
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=True)
    changer.act(group, plan(group), tick_id=TICK, now=NOW)
    rails = RailSettings(scale_in_stabilization_minutes=0)
    history = store.history(ASG, since=NOW)
    capacity = apply_rails(
        4, group, history, rails, now=NOW, data_complete=True, kill_switch_env=False
    )
    result = Actuator(clients.autoscaling, store, dry_run=True).act(
        group, capacity, tick_id=TICK, now=NOW
    )
    assert not result.duplicate and result.result == "dry-run"
    assert {(r.tick_id, r.action) for r in store.audit(ASG)} == {
        (type_change_tick_id(TICK), "instance_type"),
        (TICK, "capacity"),
    }


@pytest.mark.parametrize(
    ("fault", "result", "retryable"),
    [
        ("access_denied", "failed", False),
        ("throttling", "failed", True),
        ("server_error", "unknown", True),
        ("read_timeout", "unknown", True),
    ],
)
def test_refresh_failure_is_recorded_with_the_version_left_behind(
    clients: Clients,
    template_id: str,
    store: StateStore,
    fault: str,
    result: str,
    retryable: bool,
) -> None:
    """A refused refresh says version 2 exists and no refresh ran; no answer may have run it."""
    group = read_group(clients)
    # The fault answers StartInstanceRefresh before it is sent, so moto's lack of it is moot.
    inject_fault(clients.autoscaling, "StartInstanceRefresh", fault)
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=False)
    outcome = changer.act(group, plan(group), tick_id=TICK, now=NOW)
    assert outcome.result == result
    assert outcome.outcome.retryable is retryable
    assert outcome.outcome.error is not None and "StartInstanceRefresh" in outcome.outcome.error
    assert outcome.launch_template_version == 2
    assert outcome.instance_refresh_id is None
    assert versions(clients, template_id)[2]["type"] == NEW
    assert any("version 2" in note for note in outcome.outcome.notes)
    assert outcome.calls[1].params == expected_refresh(template_id, "2", APPLY)
    # Only a refresh that may have started counts for the cooldown.
    started = store.history(ASG, since=NOW).last_action_at
    assert started == (NOW if result == "unknown" else None)
    assert store.audit(ASG)[-1] == outcome.outcome


def test_a_later_tick_reuses_the_version_a_refused_refresh_left(
    clients: Clients, template_id: str, store: StateStore
) -> None:
    """After a refused refresh, the next tick refreshes onto version 2 and makes no version 3."""
    group = read_group(clients)
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=False)
    heal = inject_fault(clients.autoscaling, "StartInstanceRefresh", "access_denied")
    first = changer.act(group, plan(group), tick_id=TICK, now=NOW)
    heal()
    assert (first.result, first.launch_template_version) == ("failed", 2)
    ec2 = CallCounter(clients.ec2)
    later = NOW + timedelta(minutes=1)
    # moto's server has no StartInstanceRefresh: Stubber answers it and checks the version.
    with Stubber(clients.autoscaling) as stub:
        stub.add_response(
            "start_instance_refresh",
            {"InstanceRefreshId": "refresh-2"},
            expected_params=expected_refresh(template_id, "2", APPLY),
        )
        second = changer.act(group, plan(group), tick_id="tick-2", now=later)
    assert second.result == "applied", second.outcome.notes
    assert (second.launch_template_version, second.instance_refresh_id) == (2, "refresh-2")
    assert ec2.count("CreateLaunchTemplateVersion") == 0
    assert [c.operation for c in second.calls] == ["StartInstanceRefresh"]
    assert any("reusing launch template version 2" in n for n in second.outcome.notes)
    assert set(versions(clients, template_id)) == {1, 2}


def test_a_left_version_that_cannot_be_confirmed_is_not_reused(
    clients: Clients, template_id: str, store: StateStore
) -> None:
    """If the left-behind version cannot be read back, the next tick makes a fresh one."""
    group = read_group(clients)
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=False)
    heal = inject_fault(clients.autoscaling, "StartInstanceRefresh", "access_denied")
    changer.act(group, plan(group), tick_id=TICK, now=NOW)
    heal()
    # moto's server lacks DeleteLaunchTemplateVersions: a refused read stands for a gone version.
    inject_fault(clients.ec2, "DescribeLaunchTemplateVersions", "access_denied")
    with Stubber(clients.autoscaling) as stub:  # moto's server has no StartInstanceRefresh
        stub.add_response("start_instance_refresh", {"InstanceRefreshId": "refresh-3"})
        second = changer.act(group, plan(group), tick_id="tick-2", now=NOW + timedelta(minutes=1))
    assert second.result == "applied", second.outcome.notes
    assert second.launch_template_version == 3
    assert [c.operation for c in second.calls] == [
        "CreateLaunchTemplateVersion",
        "StartInstanceRefresh",
    ]
    assert not any("reusing" in n for n in second.outcome.notes)


def test_version_failure_makes_no_refresh_call(
    clients: Clients, template_id: str, store: StateStore
) -> None:
    """If CreateLaunchTemplateVersion is refused, StartInstanceRefresh is never sent."""
    group = read_group(clients)
    counter = CallCounter(clients.autoscaling)
    inject_fault(clients.ec2, "CreateLaunchTemplateVersion", "access_denied")
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=False)
    outcome = changer.act(group, plan(group), tick_id=TICK, now=NOW)
    assert outcome.result == "failed"
    assert counter.count("StartInstanceRefresh") == 0
    assert outcome.launch_template_version is None
    assert set(versions(clients, template_id)) == {1}


def test_a_plan_made_on_old_state_is_held(
    clients: Clients, template_id: str, store: StateStore
) -> None:
    """If the group changed between plan and act, nothing is called: stale_decision."""
    decision = plan(read_group(clients))
    clients.autoscaling.set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=5)
    ec2 = CallCounter(clients.ec2)
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=False)
    outcome = changer.act(read_group(clients), decision, tick_id=TICK, now=NOW)
    assert outcome.result == "held"
    assert str(Rail.STALE_DECISION) in outcome.outcome.rails
    assert ec2.count("CreateLaunchTemplateVersion") == 0


def test_a_crash_mid_change_is_found_by_the_next_tick_and_not_repeated(
    clients: Clients, template_id: str, store: StateStore
) -> None:
    """A crash after the version call leaves an intent; the next tick closes it and holds."""
    group = read_group(clients)
    changer = TypeChanger(clients.autoscaling, clients.ec2, store, dry_run=False)
    stop = crash_after(clients.ec2, "CreateLaunchTemplateVersion")
    with pytest.raises(Crash):
        changer.act(group, plan(group), tick_id=TICK, now=NOW)
    stop()
    later = NOW + timedelta(minutes=1)
    next_tick = "tick-2026-03-01T12:01:00Z"
    # The capacity actuator leaves a type change's intent to the type changer.
    empty = GroupHistory(group=ASG)
    capacity = apply_rails(
        3, group, empty, RAILS, now=later, data_complete=True, kill_switch_env=False
    )
    assert (
        Actuator(clients.autoscaling, store, dry_run=True)
        .act(group, capacity, tick_id=next_tick, now=later)
        .interrupted
        == []
    )
    ec2 = CallCounter(clients.ec2)
    result = changer.act(group, plan(group), tick_id=next_tick, now=later)
    assert [r.result for r in result.interrupted] == ["interrupted"]
    assert result.interrupted[0].tick_id == type_change_tick_id(TICK)
    assert result.result == "held"
    assert str(Rail.INTERRUPTED_ACTION) in result.outcome.rails
    assert ec2.count("CreateLaunchTemplateVersion") == 0
    # No refresh ever started, so the group never changed: no cooldown to wait out.
    assert store.history(ASG, since=NOW).last_action_at is None
    assert store.open_intents(ASG) == []


def test_records_written_before_type_changes_still_read() -> None:
    """An audit record without the new fields reads as a capacity action."""
    old = (
        '{"tick_id":"t","group":"g","at":"2026-03-01T12:00:00Z","mode":"apply","phase":"outcome",'
        '"current":2,"target":3,"call":{"service":"autoscaling","operation":"SetDesiredCapacity",'
        '"params":{"AutoScalingGroupName":"g","DesiredCapacity":3,"HonorCooldown":false}},'
        '"result":"applied"}'
    )
    record = AuditRecord.model_validate_json(old)
    assert (record.action, record.calls, record.created) == ("capacity", [], {})
    assert record.call is not None and record.call.params["HonorCooldown"] is False
    assert "SetDesiredCapacity(AutoScalingGroupName=g, DesiredCapacity=3" in record.summary()


def test_mutating_operations_list_covers_the_refresh() -> None:
    """The dry-run check would see a StartInstanceRefresh: it is in the mutating list."""
    assert "StartInstanceRefresh" in MUTATING_AUTOSCALING
