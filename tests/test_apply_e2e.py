"""Apply mode at the product's boundary: `scaler run` as an operator runs it.

Each test writes a policy file, seeds groups on the moto server (over HTTP, real boto3
clients), runs the command line, and asserts on what changed in AWS and what the user reads.
These are the README's promises about apply mode; the parts have their own unit tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scaler.aws import Clients
from scaler.cli import EXIT_OK, main
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.sim import scenarios

# The minute the seeded data ends; the command's clock starts here.
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
INCIDENT = scenarios.incident()
assert INCIDENT.throttle_onset is not None
# 8 minutes into the throttle: the backlog grows by ~2,000 messages a minute.
BUSY_END = INCIDENT.throttle_onset + timedelta(minutes=8)


def seed_busy(clients: Clients, *, now: datetime = NOW) -> None:
    """8 x m5.xlarge falling behind (the incident's backlog), at desired 8, max 40."""
    minutes = int((BUSY_END - INCIDENT.window.start).total_seconds() // 60)
    window = INCIDENT.window.head(minutes).model_copy(update={"group": "busy"})
    seed_local_aws(clients, window, asg_name="busy-asg", queue_name="busy-q", max_size=40, now=now)


def seed_idle(clients: Clients, *, now: datetime = NOW) -> None:
    """8 x m5.xlarge at a night-time trough (about 550 msg/min: 3 would do), max 20."""
    window = scenarios.healthy_diurnal(0.1).window.model_copy(update={"group": "idle"})
    seed_local_aws(clients, window, asg_name="idle-asg", queue_name="idle-q", max_size=20, now=now)


BUSY = (
    "  - name: busy\n"
    "    auto_scaling_group: busy-asg\n"
    "    queue: busy-q\n"
    "    rules:\n"
    "      iowait_bound: {enabled: false}\n"
    "      ebs_burst_exhaustion: {enabled: false}\n"
)
IDLE = "  - name: idle\n    auto_scaling_group: idle-asg\n    queue: idle-q\n"


def write_policy(path: Path, *groups: str, rails: str = "") -> Path:
    """A policy over `groups` (BUSY: its type opinions off, so its advice is capacity only)."""
    rails_block = f"    rails:\n      max_step_count: 4\n{rails}"
    path.write_text(
        f"state:\n  path: {path.parent / 'state.db'}\n"
        "live:\n  max_data_age_minutes: 30\n"
        "groups:\n" + "".join(g + rails_block for g in groups)
    )
    return path


def desired(clients: Clients, asg: str) -> int:
    """The group's desired capacity as AWS reports it."""
    (group,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])[
        "AutoScalingGroups"
    ]
    return group["DesiredCapacity"]


Run = Callable[..., tuple[int, str]]


@pytest.fixture
def run(aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> Run:
    """`scaler ARGS --endpoint-url LOCAL` at a clock; returns (exit code, stdout)."""

    def go(*args: str, at: datetime = NOW) -> tuple[int, str]:
        capsys.readouterr()
        code = main([*args, "--endpoint-url", aws.endpoint_url], clock=lambda: at)
        return code, capsys.readouterr().out

    return go


def test_apply_scales_out_a_group_whose_only_advice_is_capacity(
    clients: Clients, tmp_path: Path, run: Run
) -> None:
    """The backlog's plan (23) is applied, stepped by the rails to 8 + 4; the idle group waits."""
    seed_busy(clients)
    seed_idle(clients)
    policy = write_policy(tmp_path / "p.yaml", BUSY, IDLE)
    code, out = run("run", "--policy", str(policy), "--apply")
    assert code == EXIT_OK, out
    assert desired(clients, "busy-asg") == 12
    assert "called SetDesiredCapacity(AutoScalingGroupName=busy-asg, DesiredCapacity=12" in out
    assert "held by: max_step" in out
    # Scale-in waits for the stabilization window: no history yet.
    assert desired(clients, "idle-asg") == 8
    assert "scale_in_stabilization" in out


def test_apply_scales_in_once_the_stabilization_window_has_passed(
    clients: Clients, tmp_path: Path, run: Run
) -> None:
    """Lower advice held for 3 minutes is applied (8 -> 4: the step limit), and not before."""
    seed_idle(clients)
    policy = write_policy(
        tmp_path / "p.yaml", IDLE, rails="      scale_in_stabilization_minutes: 3\n"
    )
    seen = []
    for minute in range(6):
        code, out = run(
            "run", "--policy", str(policy), "--apply", at=NOW + timedelta(minutes=minute)
        )
        assert code == EXIT_OK, out
        seen.append(desired(clients, "idle-asg"))
    # Minutes 0-3 lack a full 3 minutes of lower advice behind them; minute 4 has it and
    # acts; minute 5 is held by the cooldown that action started.
    assert seen == [8, 8, 8, 8, 4, 4]
    assert "held by: cooldown" in out


def test_dry_run_changes_nothing_and_says_what_it_would_do(
    clients: Clients, tmp_path: Path, run: Run
) -> None:
    """Without --apply (and without mode: apply) no group changes; the output has the call."""
    seed_busy(clients)
    policy = write_policy(tmp_path / "p.yaml", BUSY)
    code, out = run("run", "--policy", str(policy))
    assert code == EXIT_OK and "(dry-run)" in out
    assert "would call SetDesiredCapacity(AutoScalingGroupName=busy-asg, DesiredCapacity=12" in out
    assert desired(clients, "busy-asg") == 8


@pytest.mark.parametrize(
    ("how", "rails", "env"),
    [
        ("environment", "", {"SCALER_KILL_SWITCH": "1"}),
        ("policy", "      kill_switch: true\n", {}),
    ],
)
def test_the_kill_switch_holds_apply_mode(
    clients: Clients,
    tmp_path: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    rails: str,
    env: dict[str, str],
) -> None:
    """Kill switch on (by env or policy): --apply runs as dry-run and says why."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seed_busy(clients)
    policy = write_policy(tmp_path / "p.yaml", BUSY, rails=rails)
    code, out = run("run", "--policy", str(policy), "--apply")
    assert code == EXIT_OK, how
    assert desired(clients, "busy-asg") == 8
    assert "kill_switch" in out and "would call SetDesiredCapacity" in out


def test_stale_data_never_scales_in(clients: Clients, tmp_path: Path, run: Run) -> None:
    """Data older than live.max_data_age_minutes: the idle group's scale-in is held."""
    seed_idle(clients)
    policy = write_policy(
        tmp_path / "p.yaml", IDLE, rails="      scale_in_stabilization_minutes: 0\n"
    )
    code, out = run("run", "--policy", str(policy), "--apply", at=NOW + timedelta(minutes=45))
    assert code == EXIT_OK, out
    assert desired(clients, "idle-asg") == 8
    assert "held by: missing_data" in out


def test_the_installed_command_acts_on_a_real_clock(
    clients: Clients, aws: LocalAws, tmp_path: Path
) -> None:
    """The `scaler` executable in a child process, as cron runs it: the busy group grows."""
    seed_busy(clients, now=datetime.now(UTC))
    policy = write_policy(tmp_path / "p.yaml", BUSY)
    scaler = Path(sys.executable).with_name("scaler")
    done = subprocess.run(
        [
            str(scaler),
            "run",
            "--policy",
            str(policy),
            "--apply",
            "--endpoint-url",
            aws.endpoint_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert desired(clients, "busy-asg") == 12
    assert "called SetDesiredCapacity" in done.stdout
