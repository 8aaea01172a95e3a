"""The control loop end to end on the local AWS: the seeded incident, applied and dry-run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from scaler.aws import Clients, RetryPolicy
from scaler.cli import EXIT_FAILED, EXIT_OK, main
from scaler.control import AuditRecord, SqliteStateStore
from scaler.control.settings import TypeChangeSettings
from scaler.controller import run_tick
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.policy import GroupPolicy, Policy
from scaler.sim import scenarios
from tests.aws_faults import FAULTS, CallCounter, answer_instance_refresh, inject_fault
from tests.helpers import seeded_window

INCIDENT = scenarios.incident()
ONSET = INCIDENT.throttle_onset
assert ONSET is not None
GROUP = GroupPolicy(
    name="crash-processor", auto_scaling_group="crash-asg", queue="crash-reports", max_size=40
)
POLICY = Policy(groups=[GROUP])
APPLY = POLICY.model_copy(update={"mode": "apply"})
FAST = RetryPolicy(max_attempts=2, max_total_s=1, initial_backoff_s=0.001, max_backoff_s=0.002)
# A tick reads the minutes before its own: this one sees the incident 8 minutes in.
TICK = ONSET + timedelta(minutes=9)


@pytest.fixture
def seeded(clients: Clients) -> Clients:
    """The incident up to 8 minutes after the throttle, on the local AWS (8 x m5.xlarge)."""
    window = seeded_window(INCIDENT, TICK, GROUP.name)
    seed_local_aws(
        clients,
        window,
        asg_name=GROUP.asg_name,
        queue_name=GROUP.queue_name,
        max_size=40,
        now=TICK,
    )
    return clients


@pytest.fixture
def pinned(clients: Clients) -> str:
    """The incident on a group pinned to launch template version 1; returns the template id."""
    window = seeded_window(INCIDENT, TICK, GROUP.name)
    seeded = seed_local_aws(
        clients,
        window,
        asg_name=GROUP.asg_name,
        queue_name=GROUP.queue_name,
        max_size=40,
        template_version="1",
        now=TICK,
    )
    return seeded.launch_template_id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStateStore]:
    """A fresh SQLite state file."""
    s = SqliteStateStore(tmp_path / "state.db")
    yield s
    s.close()


def capacity_records(store: SqliteStateStore) -> list[AuditRecord]:
    """The group's audit records of capacity decisions (type changes are recorded apart)."""
    return [r for r in store.audit(GROUP.asg_name) if r.action == "capacity"]


def desired(clients: Clients) -> int:
    """The group's desired capacity as AWS reports it."""
    (group,) = clients.autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[GROUP.asg_name]
    )["AutoScalingGroups"]
    return group["DesiredCapacity"]


def test_apply_raises_capacity_within_the_step_limit_and_audits_it(
    seeded: Clients, store: SqliteStateStore
) -> None:
    """In apply mode the incident's advice is carried out, one step of at most 4 instances."""
    report = run_tick(APPLY, seeded, store, now=TICK, environ={})
    assert report.ok and report.mode == "apply"
    (outcome,) = report.groups
    assert outcome.advice.proposal is not None and outcome.advice.proposal > 12
    assert outcome.decision is not None and outcome.decision.target == 12  # 8 + max_step 4
    assert outcome.action is not None and outcome.action.result == "applied"
    assert "max_step" in outcome.action.outcome.rails
    assert desired(seeded) == 12
    records = capacity_records(store)
    assert [(r.phase, r.result) for r in records] == [("intent", None), ("outcome", "applied")]
    assert "iowait_bound" in records[-1].evidence["findings"]  # type: ignore[operator]


def test_rerunning_the_tick_does_not_step_twice_and_cooldown_holds_the_next(
    seeded: Clients, store: SqliteStateStore
) -> None:
    """The same tick again is a duplicate; a tick a minute later is held by the cooldown."""
    run_tick(APPLY, seeded, store, now=TICK, environ={})
    again = run_tick(APPLY, seeded, store, now=TICK + timedelta(seconds=20), environ={})
    assert again.groups[0].action is not None and again.groups[0].action.duplicate
    later = run_tick(APPLY, seeded, store, now=TICK + timedelta(minutes=1), environ={})
    (outcome,) = later.groups
    assert outcome.action is not None and outcome.action.result == "held"
    assert "cooldown" in outcome.action.outcome.rails
    assert desired(seeded) == 12


def test_dry_run_changes_nothing_and_records_the_call_it_would_make(
    seeded: Clients, store: SqliteStateStore
) -> None:
    """Without --apply or mode: apply, no mutating call is sent; the audit says what would be."""
    counter = CallCounter(seeded.autoscaling)
    report = run_tick(POLICY, seeded, store, now=TICK, environ={})
    assert report.mode == "dry-run" and report.ok
    (outcome,) = report.groups
    assert outcome.action is not None and outcome.action.result == "dry-run"
    assert outcome.action.call is not None
    assert outcome.action.call.params["DesiredCapacity"] == 12
    assert counter.mutating == []
    assert desired(seeded) == 8


def test_kill_switch_env_turns_apply_into_dry_run(seeded: Clients, store: SqliteStateStore) -> None:
    """SCALER_KILL_SWITCH=1 names the rail and sends nothing, even with --apply."""
    counter = CallCounter(seeded.autoscaling)
    report = run_tick(
        POLICY, seeded, store, now=TICK, apply=True, environ={"SCALER_KILL_SWITCH": "1"}
    )
    (outcome,) = report.groups
    assert outcome.action is not None and outcome.action.result == "dry-run"
    assert "kill_switch" in outcome.action.outcome.rails
    assert counter.mutating == [] and desired(seeded) == 8


def test_overlapping_ticks_act_once(seeded: Clients, store: SqliteStateStore) -> None:
    """Two ticks racing on one group (two cron runs): one acts, the other is told to leave it."""
    counter = CallCounter(seeded.autoscaling)
    results = []
    start = threading.Barrier(2)

    def tick(owner: str) -> None:
        start.wait()
        results.append(run_tick(APPLY, seeded, store, now=TICK, environ={}, owner=owner))

    threads = [threading.Thread(target=tick, args=(f"cron-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.count("SetDesiredCapacity") == 1
    assert desired(seeded) == 12
    statuses = sorted(
        "applied" if g.action and g.action.result == "applied" else g.status
        for r in results
        for g in r.groups
    )
    assert statuses[0] == "applied"
    assert statuses[1] in ("leased-elsewhere", "decided")  # lost the lease, or found the record


def test_a_lease_held_by_a_live_tick_is_left_alone(
    seeded: Clients, store: SqliteStateStore
) -> None:
    """While another owner's lease is valid the group is not touched; after its ttl it is."""
    assert store.acquire_lease(GROUP.asg_name, "other", now=TICK, ttl=timedelta(minutes=5))
    report = run_tick(APPLY, seeded, store, now=TICK, environ={}, owner="me")
    assert report.groups[0].status == "leased-elsewhere" and desired(seeded) == 8
    later = run_tick(APPLY, seeded, store, now=TICK + timedelta(minutes=6), environ={}, owner="me")
    assert later.groups[0].status == "decided" and desired(seeded) == 12


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("autoscaling", "DescribeAutoScalingGroups"),
        ("autoscaling", "DescribeScalingActivities"),
        ("autoscaling", "DescribeInstanceRefreshes"),
        ("ec2", "DescribeLaunchTemplateVersions"),
        ("cloudwatch", "GetMetricData"),
        ("autoscaling", "SetDesiredCapacity"),
    ],
)
def test_every_aws_fault_is_recorded_and_the_tick_exits_failed(
    seeded: Clients, store: SqliteStateStore, fault: str, service: str, operation: str
) -> None:
    """Throttling, 5xx, timeouts and access denied: the tick finishes and says it failed."""
    heal = inject_fault(getattr(seeded, service), operation, fault)
    report = run_tick(APPLY, seeded, store, now=TICK, environ={}, retry=FAST)
    heal()
    assert not report.ok
    if operation == "SetDesiredCapacity":
        (outcome,) = report.groups
        assert outcome.action is not None
        may_have_run = fault in ("read_timeout", "server_error")
        assert outcome.action.result == ("unknown" if may_have_run else "failed")
        assert capacity_records(store)[-1].result == outcome.action.result
    elif operation in ("DescribeScalingActivities", "DescribeInstanceRefreshes"):
        # Read only before acting: the group's decision fails, nothing is called.
        (outcome,) = report.groups
        assert outcome.status == "failed" and outcome.error and operation in outcome.error
    else:
        (error,) = report.errors
        assert error.group == GROUP.name and operation in error.error
        assert error.retryable == (fault != "access_denied")
    assert desired(seeded) == 8


def test_a_stop_before_a_group_abandons_it_cleanly(
    seeded: Clients, store: SqliteStateStore
) -> None:
    """SIGTERM before the group is decided: nothing is called or written, and the tick fails."""
    stop = threading.Event()
    stop.set()
    counter = CallCounter(seeded.autoscaling)
    report = run_tick(APPLY, seeded, store, now=TICK, environ={}, stop=stop)
    assert [g.status for g in report.groups] == ["abandoned"]
    assert not report.ok
    assert counter.mutating == [] and store.audit(GROUP.asg_name) == []


def test_run_and_history_commands(
    seeded: Clients,
    aws: LocalAws,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`scaler run --apply` acts and exits 0; `scaler history` shows the decision."""
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "groups:\n"
        "  - name: crash-processor\n"
        "    auto_scaling_group: crash-asg\n"
        "    queue: crash-reports\n"
        f"state:\n  path: {tmp_path / 'state.db'}\n"
    )
    # The seeded data ends at TICK, so the command's clock reads TICK.
    endpoint = ["--endpoint-url", aws.endpoint_url]
    assert main(["run", "--policy", str(policy), *endpoint], clock=lambda: TICK) == EXIT_OK
    dry = capsys.readouterr().out
    assert "(dry-run)" in dry and "would call SetDesiredCapacity" in dry and desired(seeded) == 8
    assert main(["run", "--policy", str(policy), "--apply", *endpoint], clock=lambda: TICK) == 0
    assert "called SetDesiredCapacity" in capsys.readouterr().out and desired(seeded) == 12
    assert main(["history", "--policy", str(policy)]) == EXIT_OK
    history = capsys.readouterr().out
    assert "outcome:dry-run" in history and "outcome:applied" in history
    monkeypatch.setenv("SCALER_STATE", str(tmp_path / "elsewhere.db"))
    assert main(["history", "--group", "crash-asg"]) == EXIT_OK
    assert "no decisions recorded yet" in capsys.readouterr().out
    assert main(["run", "--policy", str(policy), "--every", "soon", *endpoint]) == 2
    assert main(["run", "--policy", str(tmp_path / "missing.yaml")]) == 2
    ghost = tmp_path / "ghost.yaml"
    ghost.write_text("groups:\n  - name: ghost\n")
    assert main(["run", "--policy", str(ghost), *endpoint]) == EXIT_FAILED
    assert "ghost: not evaluated" in capsys.readouterr().out


# Capacity held at 8 (the policy's max), so the type change is the tick's only action.
TYPED = GROUP.model_copy(update={"max_size": 8, "type_change": TypeChangeSettings(apply=True)})


def test_apply_changes_the_type_by_a_new_version_and_an_instance_refresh(
    clients: Clients, pinned: str, store: SqliteStateStore
) -> None:
    """The m5d.xlarge advice becomes launch template version 2 and a refresh naming exactly it."""
    requests = answer_instance_refresh(clients.autoscaling)
    report = run_tick(Policy(groups=[TYPED], mode="apply"), clients, store, now=TICK, environ={})
    (outcome,) = report.groups
    assert report.ok, outcome
    assert outcome.type_change is not None and outcome.type_change.result == "applied"
    assert outcome.type_change.launch_template_version == 2
    (version,) = clients.ec2.describe_launch_template_versions(
        LaunchTemplateId=pinned, Versions=["2"]
    )["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["InstanceType"] == "m5d.xlarge"
    (request,) = requests
    assert request["DesiredConfiguration"] == {
        "LaunchTemplate": {"LaunchTemplateId": pinned, "Version": "2"}
    }
    prefs = request["Preferences"]
    assert prefs["MinHealthyPercentage"] == 90 and prefs["AutoRollback"] is True
    assert prefs["InstanceWarmup"] > 0 and prefs["CheckpointPercentages"][-1] == 100


def test_dry_run_type_change_only_records_the_calls(
    clients: Clients, pinned: str, store: SqliteStateStore
) -> None:
    """Dry-run: no launch template version, no refresh; the audit names both calls."""
    counter = CallCounter(clients.autoscaling)
    ec2_calls = CallCounter(clients.ec2)
    report = run_tick(Policy(groups=[TYPED]), clients, store, now=TICK, environ={})
    (outcome,) = report.groups
    assert outcome.type_change is not None and outcome.type_change.result == "dry-run"
    assert [c.operation for c in outcome.type_change.calls] == [
        "CreateLaunchTemplateVersion",
        "StartInstanceRefresh",
    ]
    assert counter.mutating == [] and "CreateLaunchTemplateVersion" not in ec2_calls.calls
    versions = clients.ec2.describe_launch_template_versions(LaunchTemplateId=pinned)
    assert len(versions["LaunchTemplateVersions"]) == 1


def test_an_unreadable_answer_is_recorded_as_unknown_not_left_open(
    seeded: Clients, store: SqliteStateStore
) -> None:
    """An HTML error page instead of XML (a proxy, a broken endpoint) closes the intent."""

    def html_page(request: Any, **_: Any) -> AWSResponse:
        body = b"<!doctype html><title>500 Internal Server Error</title>"
        return AWSResponse(request.url, 500, {"Content-Type": "text/html"}, _Body(body))

    seeded.autoscaling.meta.events.register(
        "before-send.auto-scaling.SetDesiredCapacity", html_page
    )
    report = run_tick(APPLY, seeded, store, now=TICK, environ={}, retry=FAST)
    (outcome,) = report.groups
    assert outcome.action is not None and outcome.action.result == "unknown"
    assert store.open_intents(GROUP.asg_name) == []
    assert not report.ok


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def test_activities_are_read_only_for_a_group_about_to_change(
    seeded: Clients, store: SqliteStateStore
) -> None:
    """A group with nothing to do costs no activity or refresh calls; one about to change does."""
    counter = CallCounter(seeded.autoscaling)
    run_tick(APPLY, seeded, store, now=TICK, environ={})
    assert counter.count("DescribeScalingActivities") == 1  # read once, before acting
    quiet = {"enabled": False}  # no instance-type opinion either
    held_at_max = Policy(
        mode="apply",
        groups=[
            GroupPolicy.model_validate(
                {
                    **GROUP.model_dump(include={"name", "auto_scaling_group", "queue"}),
                    "max_size": 12,
                    "rules": {"iowait_bound": quiet, "ebs_burst_exhaustion": quiet},
                }
            )
        ],
    )
    calls_before = len(counter.calls)
    later = TICK + timedelta(minutes=10)
    report = run_tick(held_at_max, seeded, store, now=later, environ={})
    assert report.groups[0].decision is not None and not report.groups[0].decision.changes
    assert "DescribeScalingActivities" not in counter.calls[calls_before:]
