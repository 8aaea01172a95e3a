"""The Lambda entry point: a tick per invocation, DynamoDB state, failures that raise."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from scaler.aws import Clients, make_clients
from scaler.control import DynamoStateStore, create_table
from scaler.demo.embedded import LocalAws, local_session
from scaler.demo.seed import seed_local_aws
from scaler.errors import InputError
from scaler.lambda_handler import TickFailedError, run_invocation
from scaler.sim import scenarios
from tests.helpers import seeded_window

INCIDENT = scenarios.incident()
assert INCIDENT.throttle_onset is not None
TICK = INCIDENT.throttle_onset + timedelta(minutes=9)
TABLE = "scaler-state"


@dataclass
class Context:
    """What Lambda passes: a request id and the time left."""

    aws_request_id: str = "req-1"
    remaining_ms: int = 120_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def environ(clients: Clients, tmp_path: Path) -> dict[str, str]:
    """The seeded incident on the local AWS, a state table, and a function's environment."""
    window = seeded_window(INCIDENT, TICK, "crash-processor")
    seed_local_aws(clients, window, asg_name="crash-asg", queue_name="q", max_size=40, now=TICK)
    create_table(clients.dynamodb, TABLE)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "groups:\n  - name: crash-processor\n    auto_scaling_group: crash-asg\n    queue: q\n"
    )
    return {
        "SCALER_POLICY": str(policy),
        "SCALER_STATE": f"dynamodb://{TABLE}",
        "SCALER_APPLY": "1",
    }


def desired(clients: Clients) -> int:
    """The group's desired capacity as AWS reports it."""
    (group,) = clients.autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=["crash-asg"]
    )["AutoScalingGroups"]
    return group["DesiredCapacity"]


def test_an_invocation_applies_within_the_rails_and_a_retry_does_not_step_twice(
    clients: Clients, environ: dict[str, str]
) -> None:
    """SCALER_APPLY=1 sets 8 -> 12; the same minute invoked again (a retry) changes nothing."""
    report = run_invocation(Context(), clients=clients, environ=environ, now=TICK)
    (group,) = report["groups"]
    assert group["action"]["outcome"]["result"] == "applied"
    assert desired(clients) == 12
    again = run_invocation(Context("req-2"), clients=clients, environ=environ, now=TICK)
    assert again["groups"][0]["action"]["duplicate"] is True
    assert desired(clients) == 12


def test_without_apply_it_only_advises(clients: Clients, environ: dict[str, str]) -> None:
    """No SCALER_APPLY and no mode: apply: the report says what would have been done."""
    environ.pop("SCALER_APPLY")
    report = run_invocation(Context(), clients=clients, environ=environ, now=TICK)
    assert report["mode"] == "dry-run"
    assert report["groups"][0]["action"]["outcome"]["result"] == "dry-run"
    assert desired(clients) == 8


def test_sqlite_state_is_refused_in_lambda(clients: Clients, environ: dict[str, str]) -> None:
    """A state file would vanish with the execution environment: bad input, said plainly."""
    environ.pop("SCALER_STATE")
    with pytest.raises(InputError, match="dynamodb://TABLE"):
        run_invocation(Context(), clients=clients, environ=environ, now=TICK)


def test_a_tick_that_fails_raises_after_reporting(
    clients: Clients, environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A group that cannot be read makes the invocation an error, with the report logged."""
    Path(environ["SCALER_POLICY"]).write_text("groups:\n  - name: ghost\n")
    with pytest.raises(TickFailedError, match="ghost"):
        run_invocation(Context(), clients=clients, environ=environ, now=TICK)
    assert '"ghost"' in capsys.readouterr().out


def test_no_time_left_abandons_groups_rather_than_start_them(
    clients: Clients, environ: dict[str, str]
) -> None:
    """An invocation with less time left than the margin starts no group and fails."""
    with pytest.raises(TickFailedError):
        run_invocation(Context(remaining_ms=0), clients=clients, environ=environ, now=TICK)
    assert desired(clients) == 8


def test_a_group_reached_after_the_margin_starts_no_call_and_leaves_no_intent(
    clients: Clients, environ: dict[str, str]
) -> None:
    """25 s left: the deadline (20 s margin) comes while the group is read; nothing is started,
    no intent stays open for the next invocation to mistake, and the invocation fails."""
    stalls: list[int] = []

    def slow_read(**_: object) -> None:
        stalls.append(1)
        time.sleep(5.5)  # the group's re-read before acting runs past the margin

    clients.autoscaling.meta.events.register(
        "before-call.auto-scaling.DescribeScalingActivities", slow_read
    )
    with pytest.raises(TickFailedError):
        run_invocation(Context(remaining_ms=25_000), clients=clients, environ=environ, now=TICK)
    assert stalls and desired(clients) == 8
    store = DynamoStateStore(clients.dynamodb, TABLE)
    assert store.open_intents("crash-asg") == []
    (held,) = [r for r in store.audit("crash-asg") if r.action == "capacity"]
    assert "deadline" in held.rails


def test_a_dead_holders_lease_fails_every_invocation_until_it_expires(
    clients: Clients, environ: dict[str, str]
) -> None:
    """A lease an invocation that died left: the next invocations fail (the Errors alarm fires)
    and say who holds it; once it expires, the group is ticked again."""
    store = DynamoStateStore(clients.dynamodb, TABLE)
    ttl = timedelta(minutes=5)
    assert store.acquire_lease("crash-asg", "lambda:dead", now=TICK - timedelta(minutes=2), ttl=ttl)
    with pytest.raises(TickFailedError, match="crash-processor"):
        run_invocation(Context("req-2"), clients=clients, environ=environ, now=TICK)
    assert desired(clients) == 8
    later = TICK + timedelta(minutes=4)  # past the dead lease's expiry
    report = run_invocation(Context("req-3"), clients=clients, environ=environ, now=later)
    assert report["groups"][0]["status"] == "decided"


@pytest.mark.parametrize(
    ("live", "made"),
    [
        ("", {"dynamodb", "autoscaling", "ec2", "sqs", "cloudwatch"}),  # the default: gated
        (
            "live:\n  full_read_every_minutes: 1\n",  # every tick reads: no SQS
            {"dynamodb", "autoscaling", "ec2", "cloudwatch"},
        ),
    ],
)
def test_clients_are_made_when_first_used(
    aws: LocalAws, environ: dict[str, str], tmp_path: Path, live: str, made: set[str]
) -> None:
    """A fresh set of clients makes none up front, and a tick makes only those it calls."""
    policy = tmp_path / "live.yaml"
    policy.write_text(Path(environ["SCALER_POLICY"]).read_text() + live)
    fresh = make_clients(local_session(), endpoint_url=aws.endpoint_url)
    assert fresh.made == ()
    env = {**environ, "SCALER_APPLY": "0", "SCALER_POLICY": str(policy)}
    run_invocation(Context(), clients=fresh, environ=env, now=TICK)
    assert set(fresh.made) == made
    assert fresh.cloudwatch is fresh.cloudwatch  # made once, then reused


@pytest.mark.parametrize(
    ("module", "loaded_at_import"),
    [
        ("scaler.controller", False),  # the tick's code waits for the first invocation
        ("scaler.engine", False),
        ("numpy", False),
        ("boto3", True),
        ("scaler.aws", True),
    ],
)
def test_importing_the_handler_loads_only_what_init_needs(
    module: str, loaded_at_import: bool
) -> None:
    """Lambda's init phase imports the handler; the rules and numpy load at the first tick."""
    probe = f"import sys, scaler.lambda_handler; print({module!r} in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == str(loaded_at_import)
