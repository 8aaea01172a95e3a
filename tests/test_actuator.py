"""The actuator against a real ASG on the moto server: apply, dry-run, idempotence and faults."""

from __future__ import annotations

import math
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from scaler.aws import Clients
from scaler.control import (
    Actuator,
    AuditRecord,
    DynamoStateStore,
    Observation,
    Rail,
    RailDecision,
    RailSettings,
    SqliteStateStore,
    StateStore,
    apply_rails,
    create_table,
    make_tick_id,
)
from scaler.models import GroupState
from tests.aws_faults import FAULTS, CallCounter, Crash, crash_after, inject_fault
from tests.helpers import FAST_RETRY

ASG = "workers"
NOW = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
# The step limit and stabilization out of the way: these tests are about acting, not shaping.
RAILS = RailSettings(max_step_count=100, max_step_percent=1000, scale_in_stabilization_minutes=0)


@pytest.fixture
def asg(clients: Clients) -> str:
    """An Auto Scaling group (min 1, max 10, desired 2) from a launch template, on moto."""
    clients.ec2.create_launch_template(
        LaunchTemplateName="workers-lt",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m5.large"},
    )
    clients.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=ASG,
        LaunchTemplate={"LaunchTemplateName": "workers-lt", "Version": "$Latest"},
        MinSize=1,
        MaxSize=10,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
    )
    return ASG


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStateStore]:
    """A SQLite state store in a fresh file."""
    s = SqliteStateStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def counter(clients: Clients) -> CallCounter:
    """Every Auto Scaling call the test's client sends."""
    return CallCounter(clients.autoscaling)


def read_group(clients: Clients, name: str = ASG) -> GroupState:
    """The group as AWS reports it now."""
    (g,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    return GroupState(
        name=name,
        desired=g["DesiredCapacity"],
        min_size=g["MinSize"],
        max_size=g["MaxSize"],
        in_service=sum(1 for i in g.get("Instances", []) if i["LifecycleState"] == "InService"),
    )


def decide(
    proposal: int | None,
    group: GroupState,
    store: StateStore,
    now: datetime = NOW,
    rails: RailSettings = RAILS,
    *,
    kill_switch_env: bool = False,
) -> RailDecision:
    """The rails' decision for `proposal`, from the store's history."""
    history = store.history(group.name, since=now - rails.stabilization_window)
    return apply_rails(
        proposal,
        group,
        history,
        rails,
        now=now,
        data_complete=True,
        kill_switch_env=kill_switch_env,
    )


def test_apply_raises_desired_capacity_and_records_the_exact_call(
    clients: Clients, asg: str, store: SqliteStateStore, counter: CallCounter
) -> None:
    """Apply mode sets the ASG's desired capacity once, and the audit log holds intent+outcome."""
    group = read_group(clients)
    decision = decide(4, group, store)
    actuator = Actuator(clients.autoscaling, store, dry_run=False)
    result = actuator.act(group, decision, tick_id="t1", now=NOW, evidence={"backlog": 120.0})
    assert result.result == "applied"
    assert result.call is not None
    assert result.call.params == {
        "AutoScalingGroupName": ASG,
        "DesiredCapacity": 4,
        "HonorCooldown": False,
    }
    assert read_group(clients).desired == 4
    assert counter.mutating == ["SetDesiredCapacity"]
    intent, outcome = store.audit(ASG)
    assert (intent.phase, outcome.phase) == ("intent", "outcome")
    assert intent.call == outcome.call == result.call
    assert outcome.evidence == {"backlog": 120.0}
    history = store.history(ASG, since=NOW)
    assert (history.last_action_at, history.last_target) == (NOW, 4)


def test_honor_cooldown_is_passed_as_the_policy_says(
    clients: Clients, asg: str, store: SqliteStateStore
) -> None:
    """rails.honor_cooldown reaches the call's HonorCooldown parameter."""
    rails = RAILS.model_copy(update={"honor_cooldown": True})
    group = read_group(clients)
    result = Actuator(clients.autoscaling, store, dry_run=False).act(
        group, decide(3, group, store, rails=rails), tick_id="t1", now=NOW
    )
    assert result.call is not None
    assert result.call.params["HonorCooldown"] is True
    assert result.result == "applied"


def test_rerunning_the_same_tick_does_not_step_twice(
    clients: Clients, asg: str, store: SqliteStateStore, counter: CallCounter
) -> None:
    """A second run of tick t1 (fresh reads, fresh rails, cooldown off) makes no second call."""
    rails = RAILS.model_copy(update={"cooldown_seconds": 0})
    actuator = Actuator(clients.autoscaling, store, dry_run=False)
    first = read_group(clients)
    actuator.act(first, decide(4, first, store, rails=rails), tick_id="t1", now=NOW)
    again = read_group(clients)
    result = actuator.act(again, decide(8, again, store, rails=rails), tick_id="t1", now=NOW)
    assert result.duplicate
    assert result.outcome.target == 4
    assert counter.count("SetDesiredCapacity") == 1
    assert read_group(clients).desired == 4


def test_a_decision_made_on_old_state_is_held(
    clients: Clients, asg: str, store: SqliteStateStore, counter: CallCounter
) -> None:
    """If the group moved after the rails ran, the actuator does not apply a stale step."""
    group = read_group(clients)
    decision = decide(5, group, store)
    moved = group.model_copy(update={"desired": 3})
    result = Actuator(clients.autoscaling, store, dry_run=False).act(
        moved, decision, tick_id="t1", now=NOW
    )
    assert result.result == "held"
    assert "stale_decision" in result.outcome.rails
    assert counter.mutating == []


def test_dry_run_records_the_call_it_would_make(
    clients: Clients, asg: str, store: SqliteStateStore, counter: CallCounter
) -> None:
    """Dry-run writes the would-be call to the audit log and never touches the group."""
    group = read_group(clients)
    result = Actuator(clients.autoscaling, store, dry_run=True).act(
        group, decide(6, group, store), tick_id="t1", now=NOW
    )
    assert result.result == "dry-run"
    assert result.outcome.mode == "dry-run"
    assert result.call is not None
    assert result.call.params["DesiredCapacity"] == 6
    assert counter.mutating == []
    assert read_group(clients).desired == 2
    assert [r.phase for r in store.audit(ASG)] == ["outcome"]
    assert store.history(ASG, since=NOW).last_action_at is None


def test_kill_switch_turns_apply_into_dry_run(
    clients: Clients, asg: str, store: SqliteStateStore, counter: CallCounter
) -> None:
    """An apply actuator given a kill-switched decision only records the call."""
    group = read_group(clients)
    decision = decide(6, group, store, kill_switch_env=True)
    result = Actuator(clients.autoscaling, store, dry_run=False).act(
        group, decision, tick_id="t1", now=NOW
    )
    assert (result.result, result.outcome.mode) == ("dry-run", "dry-run")
    assert "kill_switch" in result.outcome.rails
    assert counter.mutating == []


def test_held_decision_is_recorded_with_its_rails(
    clients: Clients, asg: str, store: SqliteStateStore, counter: CallCounter
) -> None:
    """A cooldown-held decision is audited as held, naming the rail, with no call."""
    store.record_action(ASG, at=NOW - timedelta(seconds=30), target=2)
    group = read_group(clients)
    result = Actuator(clients.autoscaling, store, dry_run=False).act(
        group, decide(6, group, store), tick_id="t1", now=NOW
    )
    assert result.result == "held"
    assert result.outcome.rails == [Rail.COOLDOWN]
    assert result.call is None
    assert counter.mutating == []


def test_no_proposal_is_recorded_as_unchanged(
    clients: Clients, asg: str, store: SqliteStateStore
) -> None:
    """A tick with nothing to do still leaves an audit record."""
    group = read_group(clients)
    result = Actuator(clients.autoscaling, store, dry_run=False).act(
        group, decide(None, group, store), tick_id="t1", now=NOW
    )
    assert result.result == "unchanged"
    assert [r.result for r in store.audit(ASG)] == ["unchanged"]


@pytest.mark.parametrize("fault", FAULTS)
def test_aws_faults_are_recorded_without_a_crash_or_a_second_step(
    clients: Clients, asg: str, store: SqliteStateStore, counter: CallCounter, fault: str
) -> None:
    """Throttling, 5xx, timeouts and AccessDenied: the tick finishes and records what failed."""
    inject_fault(clients.autoscaling, "SetDesiredCapacity", fault)
    actuator = Actuator(clients.autoscaling, store, dry_run=False)
    group = read_group(clients)
    result = actuator.act(group, decide(5, group, store), tick_id="t1", now=NOW)
    may_have_run = fault in {"server_error", "read_timeout"}
    assert result.result == ("unknown" if may_have_run else "failed")
    assert result.outcome.retryable is (fault != "access_denied")
    assert result.outcome.error is not None
    assert result.outcome.error.startswith("SetDesiredCapacity:")
    assert result.recorded
    assert store.open_intents(ASG) == []
    # A possible action starts the cooldown; a refused one does not.
    assert (store.history(ASG, since=NOW).last_action_at is not None) is may_have_run
    rerun = actuator.act(read_group(clients), decide(5, group, store), tick_id="t1", now=NOW)
    assert rerun.duplicate
    assert counter.count("SetDesiredCapacity") == 1


def test_crash_between_call_and_outcome_is_found_and_not_repeated(
    clients: Clients, asg: str, store: SqliteStateStore, counter: CallCounter
) -> None:
    """A tick dying after AWS acted leaves an intent; the next tick reports it and holds."""
    unhook = crash_after(clients.autoscaling, "SetDesiredCapacity")
    group = read_group(clients)
    with pytest.raises(Crash):
        Actuator(clients.autoscaling, store, dry_run=False).act(
            group, decide(4, group, store), tick_id="t1", now=NOW
        )
    unhook()
    assert read_group(clients).desired == 4
    assert [r.tick_id for r in store.open_intents(ASG)] == ["t1"]

    later = NOW + timedelta(minutes=1)
    group = read_group(clients)
    result = Actuator(clients.autoscaling, store, dry_run=False).act(
        group, decide(7, group, store, later), tick_id="t2", now=later
    )
    assert result.result == "held"
    assert "interrupted_action" in result.outcome.rails
    (closed,) = result.interrupted
    assert (closed.tick_id, closed.result, closed.target) == ("t1", "interrupted", 4)
    assert "took effect" in closed.notes[-1]
    assert store.open_intents(ASG) == []
    assert store.history(ASG, since=later).last_action_at == NOW
    # The tick after that sees the reconciled action: cooldown holds, still one call in total.
    after = later + timedelta(minutes=1)
    decision = decide(7, read_group(clients), store, after)
    assert decision.held_by == [Rail.COOLDOWN]
    assert counter.count("SetDesiredCapacity") == 1


def test_rerun_of_a_crashed_tick_reports_it_once(
    clients: Clients, asg: str, store: SqliteStateStore, counter: CallCounter
) -> None:
    """Re-running the very tick that crashed closes its intent and makes no second call."""
    unhook = crash_after(clients.autoscaling, "SetDesiredCapacity")
    group = read_group(clients)
    actuator = Actuator(clients.autoscaling, store, dry_run=False)
    with pytest.raises(Crash):
        actuator.act(group, decide(4, group, store), tick_id="t1", now=NOW)
    unhook()
    result = actuator.act(group, decide(4, group, store), tick_id="t1", now=NOW)
    assert result.duplicate
    assert result.result == "interrupted"
    assert counter.count("SetDesiredCapacity") == 1


def test_state_store_down_means_no_action(clients: Clients, asg: str, counter: CallCounter) -> None:
    """If the intent cannot be written (DynamoDB throttled) the group is never touched."""
    create_table(clients.dynamodb, "state")
    store = DynamoStateStore(clients.dynamodb, "state", retry=FAST_RETRY)
    group = read_group(clients)
    decision = decide(5, group, store)
    inject_fault(clients.dynamodb, "TransactWriteItems", "throttling")
    result = Actuator(clients.autoscaling, store, dry_run=False).act(
        group, decision, tick_id="t1", now=NOW
    )
    assert (result.result, result.recorded) == ("failed", False)
    assert result.outcome.error is not None
    assert "TransactWriteItems: ThrottlingException" in result.outcome.error
    assert counter.mutating == []


def test_outcome_write_failure_leaves_the_intent_for_the_next_tick(
    clients: Clients, asg: str, counter: CallCounter
) -> None:
    """AWS acted but the outcome could not be written: reported applied, intent stays open."""
    create_table(clients.dynamodb, "state")
    store = DynamoStateStore(clients.dynamodb, "state", retry=FAST_RETRY)
    group = read_group(clients)
    decision = decide(5, group, store)
    # Let the intent through, then throttle every later write (PutItem and TransactWriteItems).
    actuator = Actuator(clients.autoscaling, store, dry_run=False)
    clients.autoscaling.meta.events.register(
        "after-call.auto-scaling.SetDesiredCapacity",
        lambda **_: [
            inject_fault(clients.dynamodb, op, "throttling")
            for op in ("PutItem", "TransactWriteItems")
        ],
    )
    result = actuator.act(group, decision, tick_id="t1", now=NOW)
    assert result.result == "applied"
    assert not result.recorded
    assert "outcome not recorded" in result.outcome.notes[-1]
    assert read_group(clients).desired == 5
    assert counter.count("SetDesiredCapacity") == 1


def test_overlapping_ticks_act_once(
    clients: Clients, asg: str, tmp_path: Path, counter: CallCounter
) -> None:
    """Two cron runs of the same minute, each with its own store on one file: one step."""
    start = threading.Barrier(2)
    results: dict[str, str] = {}
    now = NOW

    def tick(owner: str) -> None:
        store = SqliteStateStore(tmp_path / "shared.db")
        start.wait()
        with store.lease(ASG, owner, now=now, ttl=timedelta(minutes=2)) as held:
            if not held:
                results[owner] = "skipped"
                return
            group = read_group(clients)
            outcome = Actuator(clients.autoscaling, store, dry_run=False).act(
                group, decide(6, group, store, now), tick_id=make_tick_id(now), now=now
            )
            results[owner] = "duplicate" if outcome.duplicate else outcome.result
        store.close()

    threads = [threading.Thread(target=tick, args=(f"run-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert counter.count("SetDesiredCapacity") == 1
    assert read_group(clients).desired == 6
    # Either the second run found the lease taken, or it ran after and found tick done.
    assert sorted(results.values()) in (["applied", "skipped"], ["applied", "duplicate"])


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    proposals=st.lists(st.one_of(st.none(), st.integers(0, 30)), min_size=1, max_size=6),
    complete=st.lists(st.booleans(), min_size=6, max_size=6),
    dry_run=st.booleans(),
    rails=st.builds(
        RailSettings,
        max_step_count=st.integers(1, 10),
        cooldown_seconds=st.integers(0, 120),
        scale_in_stabilization_minutes=st.integers(0, 3),
    ),
)
def test_dry_run_never_calls_a_mutating_api(
    clients: Clients,
    asg: str,
    *,
    proposals: list[int | None],
    complete: list[bool],
    dry_run: bool,
    rails: RailSettings,
) -> None:
    """Any proposals, any rails: dry-run (or apply under the kill switch) never mutates the ASG."""
    counter = CallCounter(clients.autoscaling)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStateStore(Path(tmp) / "state.db")
        actuator = Actuator(clients.autoscaling, store, dry_run=dry_run)
        for i, proposal in enumerate(proposals):
            now = NOW + timedelta(minutes=i)
            group = read_group(clients)
            history = store.history(ASG, since=now - rails.stabilization_window)
            decision = apply_rails(
                proposal,
                group,
                history,
                rails,
                now=now,
                data_complete=complete[i],
                kill_switch_env=not dry_run,
            )
            store.record_observation(
                ASG, Observation(at=now, proposal=proposal, data_complete=complete[i])
            )
            result = actuator.act(group, decision, tick_id=make_tick_id(now), now=now)
            assert result.outcome.mode == "dry-run"
            assert result.result in {"dry-run", "held", "unchanged"}
        store.close()
    assert counter.mutating == []
    assert read_group(clients).desired == 2


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(
    ("operation", "before_call"),
    [("Query", True), ("TransactWriteItems", True), ("PutItem", False)],
)
def test_state_store_faults_never_crash_or_step_twice(
    clients: Clients,
    asg: str,
    *,
    counter: CallCounter,
    operation: str,
    before_call: bool,
    fault: str,
) -> None:
    """Every DynamoDB call the actuator makes, under every fault: a result, never a double step."""
    create_table(clients.dynamodb, "state")
    store = DynamoStateStore(clients.dynamodb, "state", retry=FAST_RETRY)
    group = read_group(clients)
    decision = decide(5, group, store)
    actuator = Actuator(clients.autoscaling, store, dry_run=False)
    heal = inject_fault(clients.dynamodb, operation, fault)
    with capture_logs() as logs:
        result = actuator.act(group, decision, tick_id="t1", now=NOW)
    heal()
    assert not result.recorded
    assert any(e["log_level"] == "error" for e in logs)
    if before_call:
        # Nothing could be written first, so AWS was never asked.
        assert (result.result, counter.mutating) == ("failed", [])
        return
    assert result.result == "applied"
    assert counter.count("SetDesiredCapacity") == 1
    # The store is back: a re-run of the tick closes the open intent and does not call again.
    rerun = actuator.act(read_group(clients), decision, tick_id="t1", now=NOW)
    assert (rerun.duplicate, rerun.result) == (True, "interrupted")
    assert store.history(ASG, since=NOW).last_action_at == NOW
    assert counter.count("SetDesiredCapacity") == 1


class _RacingStore(SqliteStateStore):
    """A store seen at the instant another run of the tick has written its intent."""

    def open_intents(self, group: str) -> list[AuditRecord]:
        return []


def test_losing_the_intent_race_makes_no_call(
    clients: Clients, asg: str, tmp_path: Path, counter: CallCounter
) -> None:
    """If another run of the same tick wrote its intent first, this run holds and calls nothing."""
    store = _RacingStore(tmp_path / "s.db")
    group = read_group(clients)
    decision = decide(5, group, store)
    rival = AuditRecord(tick_id="t1", group=ASG, at=NOW, mode="apply", phase="intent", target=5)
    assert store.append_audit(rival)
    result = Actuator(clients.autoscaling, store, dry_run=False).act(
        group, decision, tick_id="t1", now=NOW
    )
    assert (result.result, result.duplicate, result.recorded) == ("held", True, False)
    assert "owns the call" in result.outcome.notes[-1]
    assert counter.mutating == []


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ticks=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(0, 15)), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    rails=st.builds(
        RailSettings,
        max_step_count=st.integers(1, 4),
        max_step_percent=st.floats(10, 200),
        cooldown_seconds=st.sampled_from([0, 60, 120]),
        scale_in_stabilization_minutes=st.integers(0, 2),
    ),
    policy_max=st.one_of(st.none(), st.integers(2, 10)),
)
def test_applied_capacity_keeps_to_the_rails_on_a_real_group(
    clients: Clients,
    asg: str,
    *,
    ticks: list[tuple[int | None, bool]],
    rails: RailSettings,
    policy_max: int | None,
) -> None:
    """Apply mode end to end: the ASG stays in bounds, steps within limit, never drops on gaps."""
    clients.autoscaling.set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=2)
    hi = min(10, policy_max) if policy_max is not None else 10
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStateStore(Path(tmp) / "state.db")
        actuator = Actuator(clients.autoscaling, store, dry_run=False)
        for i, (proposal, complete) in enumerate(ticks):
            now = NOW + timedelta(minutes=i)
            group = read_group(clients)
            history = store.history(ASG, since=now - rails.stabilization_window)
            decision = apply_rails(
                proposal,
                group,
                history,
                rails,
                now=now,
                data_complete=complete,
                kill_switch_env=False,
                policy_max=policy_max,
            )
            store.record_observation(
                ASG, Observation(at=now, proposal=proposal, data_complete=complete)
            )
            actuator.act(group, decision, tick_id=make_tick_id(now), now=now)
            after = read_group(clients).desired
            assert 1 <= after <= hi
            step = max(1, math.ceil(group.desired * rails.max_step_percent / 100))
            allowed = min(rails.max_step_count, step)
            assert abs(after - group.desired) <= allowed
            if not complete or proposal is None:
                assert after >= group.desired
        store.close()
