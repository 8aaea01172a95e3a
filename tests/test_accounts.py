"""Many accounts and regions: groups read and acted on where they are, keyed apart.

The moto server keeps each account's resources apart and hands out credentials for the account
of any role assumed through its STS (the role need not exist), so two accounts and two regions
run here as on AWS: the policy names them, scaler assumes each account's role, and the tests
read back, with clients of that account, what changed there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.awsrequest import AWSResponse

import scaler.cli.common
from scaler.aws import ROLE_SESSION_NAME, Clients, make_clients
from scaler.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main
from scaler.demo.embedded import LocalAws, local_session
from scaler.demo.seed import seed_local_aws
from scaler.errors import AwsCallError
from scaler.live import advise
from scaler.models import GroupState, Place, group_key
from scaler.policy import parse_policy
from scaler.sim import scenarios

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
INCIDENT = scenarios.incident()
assert INCIDENT.throttle_onset is not None
BUSY_END = INCIDENT.throttle_onset + timedelta(minutes=8)

A, B = "111111111111", "222222222222"
ROLE = {A: f"arn:aws:iam::{A}:role/scaler-target", B: f"arn:aws:iam::{B}:role/scaler-target"}
HOME_ACCOUNT = "123456789012"  # the moto server's own account: scaler's credentials

# One ASG name and one queue name in three places: scaler's own account and region, account A
# in eu-west-1, account B in us-west-2.
ASG, QUEUE = "workers", "jobs"
PLACES = {
    "workers-home": Place(),
    "workers-a": Place(account=A, region="eu-west-1"),
    "workers-b": Place(account=B, region="us-west-2"),
}


def clients_in(clients: Clients, place: Place) -> Clients:
    """The test's own view of a place: scaler's clients there (the role of its account)."""
    role = ROLE[place.account] if place.account else None
    return clients.at(region=place.region, role_arn=role)


def seed(clients: Clients, place: Place, *, busy: bool) -> None:
    """8 x m5.xlarge: falling behind (the incident's backlog, max 40) or idle (night, max 20)."""
    if busy:
        minutes = int((BUSY_END - INCIDENT.window.start).total_seconds() // 60)
        window = INCIDENT.window.head(minutes)
    else:
        window = scenarios.healthy_diurnal(0.1).window
    seed_local_aws(
        clients_in(clients, place),
        window.model_copy(update={"group": ASG}),
        asg_name=ASG,
        queue_name=QUEUE,
        max_size=40 if busy else 20,
        now=NOW,
    )


def desired(clients: Clients, place: Place) -> int | None:
    """The group's desired capacity in `place` as AWS reports it there (None: no such group)."""
    found = clients_in(clients, place).autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[ASG]
    )["AutoScalingGroups"]
    return found[0]["DesiredCapacity"] if found else None


def write_policy(folder: Path, *, observability: str = "") -> Path:
    """The three groups, capacity advice only, with accounts A and B and their roles."""
    group_lines = ""
    for name, place in PLACES.items():
        group_lines += f"  - name: {name}\n    auto_scaling_group: {ASG}\n    queue: {QUEUE}\n"
        if place.account:
            group_lines += f'    account: "{place.account}"\n    region: {place.region}\n'
        group_lines += (
            "    rules:\n"
            "      iowait_bound: {enabled: false}\n"
            "      ebs_burst_exhaustion: {enabled: false}\n"
            "    rails:\n"
            "      max_step_count: 4\n"
        )
    path = folder / "policy.yaml"
    path.write_text(
        f"state:\n  path: {folder / 'state.db'}\n"
        "live:\n  max_data_age_minutes: 30\n"
        "accounts:\n"
        f'  "{A}":\n    role_arn: {ROLE[A]}\n{observability}'
        f'  "{B}":\n    role_arn: {ROLE[B]}\n'
        "groups:\n" + group_lines
    )
    return path


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(aws: LocalAws, capsys: pytest.CaptureFixture[str]) -> Run:
    """`scaler ARGS --endpoint-url LOCAL` at NOW; returns (exit code, stdout, stderr)."""

    def go(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*args, "--endpoint-url", aws.endpoint_url], clock=lambda: NOW)
        out, err = capsys.readouterr()
        return code, out, err

    return go


def refuse(clients: Clients, role_arn: str) -> list[str]:
    """AWS refuses `clients` AssumeRole of `role_arn` (a trust policy that does not name
    scaler's role: the moto server lets anyone assume any role); returns the roles asked for."""
    asked: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        body = str(request.body)
        asked.append(next(arn for arn in ROLE.values() if quote(arn, safe="") in body))
        if quote(role_arn, safe="") not in body:
            return None  # other roles: on to the server
        error = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
            f"<Message>User is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            "</Message></Error><RequestId>refused</RequestId></ErrorResponse>"
        ).encode()
        return AWSResponse(request.url, 403, {"Content-Type": "text/xml"}, _Raw(error))

    clients.sts.meta.events.register("before-send.sts.AssumeRole", answer)
    return asked


def refuse_role(monkeypatch: pytest.MonkeyPatch, role_arn: str) -> None:
    """`refuse` for the clients the command line makes."""

    def refusing(*args: Any, **kwargs: Any) -> Clients:
        clients = make_clients(*args, **kwargs)
        refuse(clients, role_arn)
        return clients

    monkeypatch.setattr(scaler.cli.common, "make_clients", refusing)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


# --- the policy ---------------------------------------------------------------------------

GOOD_ACCOUNTS = f'accounts:\n  "{A}": {{role_arn: "{ROLE[A]}"}}\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"{GOOD_ACCOUNTS}groups: [{{name: g, account: '{B}'}}]",
            f"groups[0].account {B} is not under accounts: (known: {A}); add it there",
        ),
        (
            "groups: [{name: g, account: '1234'}]",
            "groups[0].account: Value error, '1234' is not an account id: it is 12 digits",
        ),
        # YAML reads 0123 as an octal number (83): the fix is to quote it.
        ("groups: [{name: g, account: 0123}]", 'quote it ("012345678901")'),
        (
            "groups: [{name: g, region: eu-west}]",
            "groups[0].region: Value error, 'eu-west' is not a region name; write one like "
            "eu-west-1",
        ),
        (
            f'accounts:\n  "{A}": {{role_arn: "{ROLE[B]}"}}\ngroups: [{{name: g}}]',
            f"accounts.{A}.role_arn names a role in account {B}; give the role in account {A}",
        ),
        (
            f'accounts:\n  "{A}": {{role_arn: scaler-target}}\ngroups: [{{name: g}}]',
            "is not a role ARN; write it as arn:aws:iam::ACCOUNT:role/NAME",
        ),
        (
            f'accounts:\n  "{A}": {{role_arn: "{ROLE[A]}", observability: yes}}\n'
            "groups: [{name: g}]",
            f"accounts.{A}.observability: Input should be 'monitoring'",
        ),
        (
            f'accounts:\n  "12": {{role_arn: "{ROLE[A]}"}}\ngroups: [{{name: g}}]',
            "accounts: Value error, '12' is not an account id",
        ),
    ],
)
def test_bad_accounts_and_regions_name_the_field_and_the_fix(text: str, expected: str) -> None:
    """Each mistake is reported at its field with what to write instead."""
    with pytest.raises(Exception, match="problem") as caught:
        parse_policy(text, "p.yaml")
    assert expected in str(caught.value)


def test_a_bad_account_is_a_one_line_error_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scaler advise` on such a policy stops before any AWS call: exit 2, no traceback."""
    path = tmp_path / "p.yaml"
    path.write_text(f"{GOOD_ACCOUNTS}groups: [{{name: g, account: '{B}'}}]\n")
    assert main(["advise", "--policy", str(path)], clock=lambda: NOW) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"groups[0].account {B} is not under accounts:" in err


@pytest.mark.parametrize(
    ("text", "key", "place"),
    [
        ("{name: g, auto_scaling_group: w}", "w", Place()),
        (
            "{name: g, auto_scaling_group: w, region: eu-west-1}",
            "eu-west-1/w",
            Place(region="eu-west-1"),
        ),
        (
            f"{{name: g, auto_scaling_group: w, account: '{A}', region: eu-west-1}}",
            f"{A}/eu-west-1/w",
            Place(account=A, region="eu-west-1"),
        ),
        (f"{{name: g, account: {A}}}", f"{A}/g", Place(account=A)),  # unquoted: 12 digits read back
    ],
)
def test_a_group_is_keyed_by_the_account_region_and_name_the_policy_gives(
    text: str, key: str, place: Place
) -> None:
    """Without account or region the key is the ASG's name, as before (existing state carries
    on); the policy group, its state from AWS and `group_key` agree on it."""
    group = parse_policy(f"{GOOD_ACCOUNTS}groups: [{text}]").groups[0]
    assert (group.state_key, group.place) == (key, place)
    state = GroupState(name=group.asg_name, desired=1, min_size=0, max_size=2, in_service=1)
    assert state.placed(group.place).key == key
    assert group_key(group.asg_name, account=place.account, region=place.region) == key


# --- clients per place ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("place", "account"),
    [
        (Place(), HOME_ACCOUNT),
        (Place(region="eu-west-1"), HOME_ACCOUNT),
        (Place(account=A, region="eu-west-1"), A),
        (Place(account=B), B),
    ],
)
def test_clients_at_a_place_act_as_its_account_in_its_region(
    clients: Clients, place: Place, account: str
) -> None:
    """Scaler's own clients there, or the role of the account; made once and kept."""
    there = clients_in(clients, place)
    assert there.sts.get_caller_identity()["Account"] == account
    assert there.autoscaling.meta.region_name == (place.region or "us-east-1")
    assert clients_in(clients, place) is there
    if place.account:
        arn = there.sts.get_caller_identity()["Arn"]
        assert arn.endswith(f"/{ROLE_SESSION_NAME}"), arn  # CloudTrail there names scaler


def test_a_refused_role_is_an_aws_call_error_naming_the_role(aws: LocalAws) -> None:
    """One line with the role, AWS's answer and the fix; nothing kept: the next tick asks again,
    and other accounts' roles are unaffected."""
    clients = make_clients(local_session(), endpoint_url=aws.endpoint_url)
    asked = refuse(clients, ROLE[B])
    for _ in range(2):
        with pytest.raises(AwsCallError) as caught:
            clients.at(role_arn=ROLE[B])
        message = str(caught.value)
        assert message.startswith(f"cannot assume role {ROLE[B]} (sts:AssumeRole: AccessDenied")
        assert "\n" not in message and "trust policy" in message
    assert clients.at(role_arn=ROLE[A]).sts.get_caller_identity()["Account"] == A
    assert asked == [ROLE[B], ROLE[B], ROLE[A]]


@pytest.mark.parametrize(
    ("duration_s", "assumed"),
    [
        (3600, 1),  # an hour's credentials (AssumeRole's default): assumed once, then kept
        (900, 2),  # credentials ending within RENEW_ROLE_BEFORE: assumed again before use
    ],
)
def test_a_role_is_assumed_again_before_its_credentials_end(
    aws: LocalAws, duration_s: int, assumed: int
) -> None:
    """The kept clients of an account are replaced when their credentials near their end."""
    clients = make_clients(local_session(), endpoint_url=aws.endpoint_url)
    asked = refuse(clients, "arn:aws:iam::999999999999:role/none")  # counts; refuses no role here

    def lasting(params: dict[str, Any], **_: Any) -> None:
        params["DurationSeconds"] = duration_s  # the server sets Expiration from it

    clients.sts.meta.events.register("before-parameter-build.sts.AssumeRole", lasting)
    first = clients.at(role_arn=ROLE[A])
    second = clients.at(role_arn=ROLE[A])
    assert len(asked) == assumed
    assert (first is second) == (assumed == 1)
    assert second.sts.get_caller_identity()["Account"] == A


# --- reading metrics through a monitoring account -----------------------------------------


def _record_metric_queries(cloudwatch: Any) -> list[dict[str, Any]]:
    """Every MetricDataQuery `cloudwatch` sends, as botocore serialized it."""
    sent: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        sent.extend(params["MetricDataQueries"])

    cloudwatch.meta.events.register("before-parameter-build.cloudwatch.GetMetricData", keep)
    return sent


@pytest.mark.parametrize(
    ("observability", "read_in", "account_ids"),
    [
        # Metrics read in the monitoring account (scaler's own), each query naming account A.
        ("    observability: monitoring\n", "monitoring", {A}),
        # Without it, metrics are read through account A's role, as every other call.
        ("", "account", {None}),
    ],
)
def test_metrics_are_read_through_the_monitoring_account_when_it_is_set_up(
    clients: Clients,
    tmp_path: Path,
    observability: str,
    read_in: str,
    account_ids: set[str | None],
) -> None:
    """With `observability: monitoring` every GetMetricData query of account A's group carries
    AccountId and goes through scaler's own CloudWatch in the group's region."""
    place = PLACES["workers-a"]
    seed(clients, place, busy=True)
    policy = parse_policy(write_policy(tmp_path, observability=observability).read_text())
    policy = policy.model_copy(update={"groups": [policy.group("workers-a")]})
    monitoring = _record_metric_queries(clients.at(region=place.region).cloudwatch)
    in_account = _record_metric_queries(clients_in(clients, place).cloudwatch)
    tick = advise(policy, clients, now=NOW)
    sent = {"monitoring": len(monitoring), "account": len(in_account)}
    assert tick.metric_queries > 0
    assert sent == {where: tick.metric_queries if where == read_in else 0 for where in sent}
    assert {q.get("AccountId") for q in monitoring + in_account} == account_ids
    # Auto Scaling is read in the group's own account either way.
    (group,) = tick.groups
    assert (group.state.key, group.state.desired) == (f"{A}/eu-west-1/{ASG}", 8)


# --- the command line, end to end --------------------------------------------------------


def test_one_asg_name_in_three_places_is_advised_separately(
    clients: Clients, tmp_path: Path, run: Run
) -> None:
    """`scaler advise`: each group read where it is; the headline names its account and region."""
    seed(clients, PLACES["workers-home"], busy=True)
    seed(clients, PLACES["workers-a"], busy=True)
    seed(clients, PLACES["workers-b"], busy=False)
    code, out, _ = run("advise", "--policy", str(write_policy(tmp_path)))
    assert code == EXIT_OK, out
    assert f"workers-home: ASG {ASG} desired 8 (min 0, max 40)" in out
    assert f"workers-a: ASG {A}/eu-west-1/{ASG} desired 8 (min 0, max 40)" in out
    assert f"workers-b: ASG {B}/us-west-2/{ASG} desired 8 (min 0, max 20)" in out
    code, out, _ = run("advise", "--policy", str(write_policy(tmp_path)), "--format", "json")
    advised = {r["group"] for r in json.loads(out)["recommendations"] if r["desired_capacity"]}
    assert {"workers-home", "workers-a"} <= advised


def test_apply_acts_in_each_groups_own_account_and_region(
    clients: Clients, tmp_path: Path, run: Run
) -> None:
    """`scaler run --apply`: the busy groups scale out where they are (8 -> 12), the idle one in
    account B is left alone; state and audit are kept per account, region and name."""
    seed(clients, PLACES["workers-home"], busy=True)
    seed(clients, PLACES["workers-a"], busy=True)
    seed(clients, PLACES["workers-b"], busy=False)
    policy = write_policy(tmp_path)
    code, out, _ = run("run", "--policy", str(policy), "--apply")
    assert code == EXIT_OK, out
    assert {name: desired(clients, place) for name, place in PLACES.items()} == {
        "workers-home": 12,
        "workers-a": 12,
        "workers-b": 8,
    }
    # Nothing leaked into a region or account a group is not in.
    assert desired(clients, Place(region="eu-west-1")) is None
    assert desired(clients, Place(account=B, region="eu-west-1")) is None
    code, out, _ = run("run", "--policy", str(policy), "--format", "json")
    report = json.loads(out)
    states = {
        g["group"]: (g["advice"]["state"]["account"], g["advice"]["state"]["region"])
        for g in report["groups"]
    }
    assert states == {
        "workers-home": (None, None),
        "workers-a": (A, "eu-west-1"),
        "workers-b": (B, "us-west-2"),
    }
    code, out, _ = run("history", "--policy", str(policy), "--format", "json")
    assert code == EXIT_OK
    records = json.loads(out)
    applied = {r["group"] for r in records if r["result"] == "applied"}
    assert applied == {ASG, f"{A}/eu-west-1/{ASG}"}
    assert {r["group"] for r in records} == {ASG, f"{A}/eu-west-1/{ASG}", f"{B}/us-west-2/{ASG}"}


def test_a_refused_role_fails_its_accounts_groups_and_no_other(
    clients: Clients, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AssumeRole refused in account A: its group is reported in one line and the tick exits 1;
    the groups of scaler's own account and of account B are advised and acted on."""
    seed(clients, PLACES["workers-home"], busy=True)
    seed(clients, PLACES["workers-a"], busy=True)
    seed(clients, PLACES["workers-b"], busy=True)
    refuse_role(monkeypatch, ROLE[A])
    code, out, err = run("run", "--policy", str(write_policy(tmp_path)), "--apply")
    assert code == EXIT_FAILED, out
    assert "Traceback" not in out + err
    (line,) = [line for line in out.splitlines() if "workers-a" in line]
    assert line.startswith(f"  workers-a: not evaluated: account {A}, region eu-west-1: ")
    assert f"cannot assume role {ROLE[A]}" in line and "AccessDenied" in line
    assert {name: desired(clients, place) for name, place in PLACES.items()} == {
        "workers-home": 12,
        "workers-a": 8,
        "workers-b": 12,
    }
    code, out, err = run("advise", "--policy", str(write_policy(tmp_path)))
    assert code == EXIT_FAILED and "Traceback" not in out + err
    assert f"workers-a: account {A}, region eu-west-1: cannot assume role" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["export", "--start", "-1h"],
            "group 'workers-a' is in account 111111111111, region eu-west-1: scaler export "
            "reads only scaler's own account and region",
        ),
        # The groups of scaler's own account and region export as before.
        (["export", "--start", "-1h", "--group", "workers-home"], None),
    ],
)
def test_export_never_reads_a_group_in_the_wrong_account(
    clients: Clients, tmp_path: Path, run: Run, args: list[str], expected: str | None
) -> None:
    """`scaler export` reads with scaler's own credentials: a group elsewhere is refused, exit 2."""
    seed(clients, PLACES["workers-home"], busy=True)
    output = tmp_path / "out.csv"
    code, _, err = run(*args, "--policy", str(write_policy(tmp_path)), "-o", str(output))
    if expected is None:
        assert code == EXIT_OK, err
        assert ",queue_visible,16100,workers-home" in output.read_text()
    else:
        assert code == EXIT_BAD_INPUT and "Traceback" not in err
        assert expected in err and not output.exists()


def test_a_group_missing_in_its_account_says_where_it_was_looked_for(
    clients: Clients, tmp_path: Path, run: Run
) -> None:
    """A group not found is reported with the account and region it was looked for in; the
    same name elsewhere is not mistaken for it."""
    seed(clients, PLACES["workers-home"], busy=True)
    seed(clients, PLACES["workers-a"], busy=True)
    code, out, _ = run("run", "--policy", str(write_policy(tmp_path)))
    assert code == EXIT_FAILED
    assert (
        f"  workers-b: not evaluated: account {B}, region us-west-2: no Auto Scaling group "
        f"named '{ASG}'" in out
    )
    assert f"workers-a: ASG {A}/eu-west-1/{ASG} desired 8" in out
