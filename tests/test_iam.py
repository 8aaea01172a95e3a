"""Least privilege: the IAM policies in infra/ grant exactly the AWS calls scaler makes.

Each mode runs through its real entry point (`scaler.cli.main`, the Lambda's `run_invocation`
and, in fan-out mode, `run_worker` for the shards the scheduler sent to a real queue) against the
local AWS, with the state store it uses. A before-call hook on every client scaler
makes records the IAM actions AWS authorizes for each call (TransactWriteItems is authorized
item by item: dynamodb:ConditionCheckItem, PutItem, DeleteItem). Each policy document is then
compared with the modes it is for: no call ungranted, no grant never called, except the few
permissions AWS checks on scaler's behalf that no local server exercises (`IMPLIED`).

Groups in another account are read and acted on through a role scaler assumes there: its own
role then needs sts:AssumeRole, and the role in the target account (`iam-target-*.json`) what
the calls made with that role's credentials need, recorded apart.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

import scaler.aws
import scaler.cli.common
from scaler.aws import ROLE_SESSION_NAME, Clients
from scaler.cli import EXIT_OK, main
from scaler.control import create_table
from scaler.demo.embedded import LOCAL_CREDENTIALS, LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.lambda_handler import run_invocation, run_worker
from scaler.sim import scenarios
from tests.aws_faults import answer_instance_refresh

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
TEMPLATE = INFRA / "lambda" / "template.yaml"

INCIDENT = scenarios.incident()
assert INCIDENT.throttle_onset is not None
# A tick reads the minutes before its own: this one sees the incident 8 minutes in.
TICK = INCIDENT.throttle_onset + timedelta(minutes=9)
LOCAL_AMI = "ami-12c6146b"  # an image the local AWS knows
# Captured before record_every_mode wraps it: the test's own clients are not recorded.
MAKE_CLIENTS = scaler.aws.make_clients
AT = Clients.at
# The role the policy names in the target account (the name iam-*.json let scaler assume).
TARGET_ACCOUNT = "111111111111"
TARGET_ROLE = f"arn:aws:iam::{TARGET_ACCOUNT}:role/scaler-target"

# botocore's service id -> the IAM action prefix AWS authorizes its calls under.
IAM_PREFIX = {
    "Auto Scaling": "autoscaling",
    "CloudWatch": "cloudwatch",
    "DynamoDB": "dynamodb",
    "EC2": "ec2",
    "SNS": "sns",
    "SQS": "sqs",
    "SSM": "ssm",
    "STS": "sts",
}
# TransactWriteItems has no IAM action of its own: each item is authorized as its single call.
TRANSACT_ITEM_ACTION = {
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Put": "dynamodb:PutItem",
    "Delete": "dynamodb:DeleteItem",
    "Update": "dynamodb:UpdateItem",
}

# Permissions AWS checks on scaler's behalf when it makes a call, which no local server
# exercises (moto authorizes nothing, and StartInstanceRefresh is answered in the test):
# granted exactly when the call that needs them is made.
IMPLIED: dict[str, dict[str, str]] = {
    "autoscaling:StartInstanceRefresh": {
        "ec2:RunInstances": (
            "a refresh whose desired configuration names a launch template checks that the "
            "caller may launch instances from that template"
        ),
        "iam:PassRole": (
            "the same check passes the template's instance profile role to EC2 on the caller's "
            "behalf"
        ),
        "ec2:CreateTags": (
            "a template that tags its instances or volumes at launch needs tag-on-create "
            "permission for the caller"
        ),
    },
}

# Granted to the fan-out worker for Lambda's event source mapping, which polls the shard queue
# with the function's role: scaler's own code never makes these calls.
EVENT_SOURCE = {
    "sqs:ReceiveMessage": "the event source mapping receives the shard messages",
    "sqs:DeleteMessage": "it deletes each message the worker did not report failed",
    "sqs:GetQueueAttributes": "it reads the queue's attributes when it starts",
}
# What Lambda itself needs to write the function's log (the managed policy every function has).
LAMBDA_LOGGING = "AWSLambdaBasicExecutionRole"

# Actions that change something: never granted on every resource without a condition.
READ_ONLY_PREFIXES = ("Describe", "Get", "List")


class CallRecorder:
    """The IAM actions every watched client's calls need, seen by a before-call hook."""

    def __init__(self) -> None:
        self.actions: set[str] = set()

    def watch(self, clients: Clients) -> Clients:
        """Record every call `clients` make from now on; returns them."""
        for service in Clients.SERVICES:
            client = getattr(clients, service)
            service_id = client.meta.service_model.service_id
            prefix = IAM_PREFIX[service_id]
            client.meta.events.register(
                f"before-call.{service_id.hyphenize()}", self._seen_as(prefix)
            )
        return clients

    def _seen_as(self, prefix: str) -> Callable[..., None]:
        def seen(model: Any, params: dict[str, Any], **_: Any) -> None:
            if (prefix, model.name) == ("dynamodb", "TransactWriteItems"):
                for item in json.loads(params["body"])["TransactItems"]:
                    self.actions.update(TRANSACT_ITEM_ACTION[kind] for kind in item)
            else:
                self.actions.add(f"{prefix}:{model.name}")

        return seen

    def during(self, run: Callable[[], object]) -> frozenset[str]:
        """The actions `run` needed (and only those)."""
        self.actions.clear()
        run()
        return frozenset(self.actions)


# --- the world each mode runs in -------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Two groups on the local AWS: one the incident scales out (launched from a launch
    configuration), one whose type changes (pinned to launch template version 1)."""

    aws: LocalAws
    clients: Clients
    folder: Path
    template_id: str
    account: str | None = None  # the groups' account, through TARGET_ROLE; None: scaler's own
    home: Clients | None = None  # scaler's own account (its state table), when `account` is set

    def policy(self, state: str) -> Path:
        """A policy for both groups, its state in `state`: a SQLite file, or dynamodb:TABLE."""
        if state.startswith("dynamodb:"):
            table = state.removeprefix("dynamodb:")
            create_table((self.home or self.clients).dynamodb, table)
            block = f"  dynamodb_table: {table}\n"
        else:
            block = f"  path: {self.folder / state}.db\n"
        path = self.folder / f"policy-{state.replace(':', '-')}.yaml"
        where = f'    account: "{self.account}"\n' if self.account else ""
        accounts = (
            f'accounts:\n  "{self.account}": {{role_arn: "{TARGET_ROLE}"}}\n'
            if self.account
            else ""
        )
        path.write_text(
            "groups:\n"
            "  - name: crash-processor\n"
            "    auto_scaling_group: crash-asg\n"
            "    queue: crash-reports\n"
            "    max_size: 40\n"
            f"{where}"
            # Held at its size, so its only action is the type change the incident advises
            # (one group cannot do both in a tick: the first action starts the cooldown).
            "  - name: typed-processor\n"
            "    auto_scaling_group: typed-asg\n"
            "    queue: typed-reports\n"
            "    max_size: 8\n"
            "    type_change: {apply: true}\n"
            f"{where}"
            f"{accounts}"
            f"state:\n{block}"
        )
        return path

    @property
    def endpoint(self) -> list[str]:
        """The command-line flag that points scaler at the local AWS."""
        return ["--endpoint-url", self.aws.endpoint_url]

    def desired(self) -> int:
        """The scaled group's desired capacity as AWS reports it."""
        (group,) = self.clients.autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=["crash-asg"]
        )["AutoScalingGroups"]
        return group["DesiredCapacity"]

    def template_versions(self) -> int:
        """How many versions the typed group's launch template has."""
        versions = self.clients.ec2.describe_launch_template_versions(
            LaunchTemplateId=self.template_id
        )["LaunchTemplateVersions"]
        return len(versions)


def make_world(aws: LocalAws, folder: Path, account: str | None = None) -> World:
    """The local AWS emptied, then the incident seeded on both groups (8 x m5.xlarge each), in
    `account` (through TARGET_ROLE) or in scaler's own."""
    aws.reset()
    folder.mkdir(parents=True)
    home = MAKE_CLIENTS(boto3.Session(**LOCAL_CREDENTIALS), endpoint_url=aws.endpoint_url)
    clients = home if account is None else AT(home, role_arn=TARGET_ROLE)
    length = int((TICK - INCIDENT.window.start).total_seconds() // 60) - 1
    templates: dict[str, str] = {}
    for group, asg, queue, version in (
        ("crash-processor", "crash-asg", "crash-reports", "$Default"),
        ("typed-processor", "typed-asg", "typed-reports", "1"),  # pinned: its type may change
    ):
        window = INCIDENT.window.head(length).model_copy(update={"group": group})
        templates[asg] = seed_local_aws(
            clients,
            window,
            asg_name=asg,
            queue_name=queue,
            max_size=40,
            template_version=version,
            now=TICK,
        ).launch_template_id
    _move_to_a_launch_configuration(clients, "crash-asg")
    return World(
        aws=aws,
        clients=clients,
        folder=folder,
        template_id=templates["typed-asg"],
        account=account,
        home=home,
    )


def _move_to_a_launch_configuration(clients: Clients, asg: str) -> None:
    """The group again, launched from a launch configuration (as older groups are), so its
    instance type is read with DescribeLaunchConfigurations."""
    (group,) = clients.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])[
        "AutoScalingGroups"
    ]
    clients.autoscaling.create_launch_configuration(
        LaunchConfigurationName=f"{asg}-config", ImageId=LOCAL_AMI, InstanceType="m5.xlarge"
    )
    clients.autoscaling.delete_auto_scaling_group(AutoScalingGroupName=asg, ForceDelete=True)
    clients.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=asg,
        LaunchConfigurationName=f"{asg}-config",
        MinSize=group["MinSize"],
        MaxSize=group["MaxSize"],
        DesiredCapacity=group["DesiredCapacity"],
        AvailabilityZones=group["AvailabilityZones"],
    )


@dataclass
class Context:
    """What Lambda passes: a request id and the time left."""

    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


# --- the modes, each through its entry point, each checked to have done its job ----------


def _ok(args: list[str]) -> None:
    code = main(args, clock=lambda: TICK)
    assert code == EXIT_OK, f"scaler {' '.join(args)} exited {code}"


def advise(world: World, recorder: CallRecorder) -> frozenset[str]:
    """`scaler advise`: a read-only tick."""
    args = ["advise", "--policy", str(world.policy("advise")), *world.endpoint]
    calls = recorder.during(lambda: _ok(args))
    assert world.desired() == 8
    return calls


def run(world: World, recorder: CallRecorder, state: str, *, apply: bool) -> frozenset[str]:
    """`scaler run [--apply]`: in apply mode a scale-out and an instance type change."""
    args = ["run", "--policy", str(world.policy(state)), *world.endpoint]
    calls = recorder.during(lambda: _ok([*args, "--apply"] if apply else args))
    assert (world.desired(), world.template_versions()) == ((12, 2) if apply else (8, 1))
    return calls


def history(world: World, recorder: CallRecorder, state: str) -> frozenset[str]:
    """`scaler history` of both groups, after a tick recorded its decisions in `state`."""
    args = ["history", "--policy", str(world.policy(state)), "--format", "json", *world.endpoint]
    out = io.StringIO()
    with redirect_stdout(out):
        calls = recorder.during(lambda: _ok(args))
    assert {r["group"] for r in json.loads(out.getvalue())} == {"crash-asg", "typed-asg"}
    return calls


def catalog_refresh(world: World, recorder: CallRecorder) -> frozenset[str]:
    """`scaler catalog refresh`: instance facts from EC2 into a snapshot file."""
    output = world.folder / "instances.json"
    args = ["catalog", "refresh", "--output", str(output), "--types", "m5.xlarge", "m5d.xlarge"]
    calls = recorder.during(lambda: _ok([*args, *world.endpoint, "--region", "us-east-1"]))
    assert len(json.loads(output.read_text())["types"]) == 2
    return calls


def lambda_tick(world: World, recorder: CallRecorder, table: str, *, apply: bool) -> frozenset[str]:
    """The Lambda function's invocation, state in DynamoDB, acting when `apply`."""
    clients = recorder.watch(
        MAKE_CLIENTS(boto3.Session(**LOCAL_CREDENTIALS), endpoint_url=world.aws.endpoint_url)
    )
    answer_instance_refresh(clients.autoscaling)
    environ = {
        "SCALER_POLICY": str(world.policy(f"dynamodb:{table}")),
        "SCALER_STATE": f"dynamodb://{table}",
        **({"SCALER_APPLY": "1"} if apply else {}),
    }
    with redirect_stdout(io.StringIO()):  # the function logs its report
        calls = recorder.during(
            lambda: run_invocation(Context(), clients=clients, environ=environ, now=TICK)
        )
    assert (world.desired(), world.template_versions()) == ((12, 2) if apply else (8, 1))
    return calls


def lambda_clients(world: World, recorder: CallRecorder) -> Clients:
    """A function's clients on the local AWS, every call recorded."""
    clients = recorder.watch(
        MAKE_CLIENTS(boto3.Session(**LOCAL_CREDENTIALS), endpoint_url=world.aws.endpoint_url)
    )
    answer_instance_refresh(clients.autoscaling)
    return clients


def fan_out(world: World, clients: Clients, table: str, *, apply: bool) -> list[dict[str, Any]]:
    """The scheduled function in fan-out mode (a worker a group): the messages it sent."""
    queue = world.clients.sqs.create_queue(QueueName=f"shards-{table}")["QueueUrl"]
    environ = {
        "SCALER_POLICY": str(world.policy(f"dynamodb:{table}")),
        "SCALER_STATE": f"dynamodb://{table}",
        "SCALER_SHARD_QUEUE": queue,
        "SCALER_GROUPS_PER_WORKER": "1",
        **({"SCALER_APPLY": "1"} if apply else {}),
    }
    with redirect_stdout(io.StringIO()):
        sent = run_invocation(Context(), clients=clients, environ=environ, now=TICK)
    assert sent["mode"] == "fan-out"
    messages: list[dict[str, Any]] = world.clients.sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10
    )["Messages"]
    assert len(messages) == len(sent["sent"])
    return [{**environ, "body": m["Body"], "id": m["MessageId"]} for m in messages]


def lambda_scheduler(world: World, recorder: CallRecorder) -> frozenset[str]:
    """The scheduled function with more groups than a worker ticks: it only sends shards."""
    clients = lambda_clients(world, recorder)
    calls = recorder.during(lambda: fan_out(world, clients, "scheduler", apply=False))
    assert world.desired() == 8
    return calls


def lambda_worker(
    world: World, recorder: CallRecorder, table: str, *, apply: bool
) -> frozenset[str]:
    """The worker function, once for each shard the scheduler sent (its calls not recorded)."""
    shards = fan_out(world, world.clients, table, apply=apply)
    clients = lambda_clients(world, recorder)

    def work() -> None:
        for shard in shards:
            event = {"Records": [{"messageId": shard["id"], "body": shard["body"]}]}
            with redirect_stdout(io.StringIO()):
                answer = run_worker(event, Context(), clients=clients, environ=shard, now=TICK)
            assert answer == {"batchItemFailures": []}

    calls = recorder.during(work)
    assert (world.desired(), world.template_versions()) == ((12, 2) if apply else (8, 1))
    return calls


# Which modes each policy document is for: it must grant exactly what they call.
COVERAGE: dict[str, tuple[str, ...]] = {
    "iam-advise.json": ("advise", "run dry-run, SQLite", "history, DynamoDB"),
    "iam-apply.json": (
        "run dry-run, SQLite",
        "run dry-run, DynamoDB",
        "run --apply, SQLite",
        "run --apply, DynamoDB",
        "history, DynamoDB",
    ),
    "iam-catalog.json": ("catalog refresh",),
    "lambda/template.yaml": ("Lambda, dry-run", "Lambda, apply", "Lambda scheduler, fan-out"),
    "lambda/template.yaml#Worker": ("Lambda worker, dry-run", "Lambda worker, apply"),
    "iam-target-advise.json": (
        "advise, another account: target role",
        "Lambda, dry-run, another account: target role",
    ),
    "iam-target-apply.json": (
        "advise, another account: target role",
        "run --apply, another account: target role",
        "Lambda, dry-run, another account: target role",
    ),
}
# What scaler's own role needs for groups in another account: to assume the role there.
for _document, _mode in (
    ("iam-advise.json", "advise, another account"),
    ("iam-apply.json", "run --apply, another account"),
    ("lambda/template.yaml", "Lambda, dry-run, another account"),
    # a worker ticks its shard through the same tick as the single invocation
    ("lambda/template.yaml#Worker", "Lambda, dry-run, another account"),
):
    COVERAGE[_document] += (_mode,)


def record_every_mode(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch, folder: Path
) -> dict[str, frozenset[str]]:
    """Every mode's IAM actions. Modes that change nothing in AWS share one seeded world (each
    with its own state); each mode that acts gets a freshly seeded one."""
    recorder = CallRecorder()

    def make_watched_clients(*args: Any, **kwargs: Any) -> Clients:
        clients = recorder.watch(MAKE_CLIENTS(*args, **kwargs))
        answer_instance_refresh(clients.autoscaling)  # moto's server lacks it
        return clients

    worlds = iter(range(5))

    def world() -> World:
        return make_world(aws, folder / f"world-{next(worlds)}")

    # Clients in another account, as its role: their calls are that role's, recorded apart.
    target = CallRecorder()
    watched: list[Clients] = []

    def watched_at(self: Clients, **kwargs: Any) -> Clients:
        there = AT(self, **kwargs)
        if there is not self and not any(there is w for w in watched):
            watched.append(target.watch(there))
            answer_instance_refresh(there.autoscaling)
        return there

    def elsewhere(mode: str, run_mode: Callable[[], frozenset[str]]) -> dict[str, frozenset[str]]:
        target.actions.clear()
        own = run_mode()
        return {mode: own, f"{mode}: target role": frozenset(target.actions)}

    # The two places an entry point makes its clients: the CLI's, and catalog refresh's.
    monkeypatch.setattr(scaler.cli.common, "make_clients", make_watched_clients)
    monkeypatch.setattr(scaler.aws, "make_clients", make_watched_clients)
    monkeypatch.setattr(Clients, "at", watched_at)
    away = make_world(aws, folder / "world-away", account=TARGET_ACCOUNT)
    away_modes = {
        **elsewhere("advise, another account", lambda: advise(away, recorder)),
        **elsewhere(
            "Lambda, dry-run, another account",
            lambda: lambda_tick(away, recorder, "lambda-away", apply=False),
        ),
    }
    away = make_world(aws, folder / "world-away-apply", account=TARGET_ACCOUNT)
    away_modes |= elsewhere(
        "run --apply, another account",
        lambda: run(away, recorder, "dynamodb:away", apply=True),
    )
    calm = world()
    return away_modes | {
        "advise": advise(calm, recorder),
        "run dry-run, SQLite": run(calm, recorder, "dry", apply=False),
        "history, SQLite": history(calm, recorder, "dry"),
        "run dry-run, DynamoDB": run(calm, recorder, "dynamodb:dry", apply=False),
        "history, DynamoDB": history(calm, recorder, "dynamodb:dry"),
        "catalog refresh": catalog_refresh(calm, recorder),
        "Lambda, dry-run": lambda_tick(calm, recorder, "lambda-dry", apply=False),
        "Lambda scheduler, fan-out": lambda_scheduler(calm, recorder),
        "Lambda worker, dry-run": lambda_worker(calm, recorder, "worker-dry", apply=False),
        "run --apply, SQLite": run(world(), recorder, "apply", apply=True),
        "run --apply, DynamoDB": run(world(), recorder, "dynamodb:apply", apply=True),
        "Lambda, apply": lambda_tick(world(), recorder, "lambda-apply", apply=True),
        "Lambda worker, apply": lambda_worker(world(), recorder, "worker-apply", apply=True),
    }


# --- reading the policy documents -------------------------------------------------------


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt) read as plain values."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def template() -> dict[str, Any]:
    """The SAM template, short tags as {tag: value}."""
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)
    return loaded


def function_statements(function: str) -> list[dict[str, Any]]:
    """Every statement a function of the template is granted: its SAM `Policies` (inline
    statements, and the template's own managed policies by !Ref), or its own `Role`'s."""
    resources = template()["Resources"]
    properties = resources[function]["Properties"]
    if "Role" in properties:
        role = resources[properties["Role"]["GetAtt"].removesuffix(".Arn")]["Properties"]
        managed = [
            p
            for p in role["ManagedPolicyArns"]
            if not str(p.get("Sub", "")).endswith(LAMBDA_LOGGING)
        ]
        inline = [p["PolicyDocument"] for p in role.get("Policies", [])]
    else:
        managed = [p for p in properties["Policies"] if set(p) == {"Ref"}]
        inline = [p for p in properties["Policies"] if set(p) != {"Ref"}]
    for policy in managed:
        assert set(policy) == {"Ref"}, f"{function}: {policy} is not the template's own policy"
        inline.append(resources[policy["Ref"]]["Properties"]["PolicyDocument"])
    # SAM's policy templates (DynamoDBCrudPolicy, ...) grant more than scaler calls.
    assert all("Statement" in p for p in inline), "list the actions instead"
    return [s for p in inline for s in p["Statement"]]


def statements(document: str) -> list[dict[str, Any]]:
    """Every statement of a policy document, or of a Lambda function's policies
    (`lambda/template.yaml` is the Tick function, `lambda/template.yaml#Worker` the Worker)."""
    if document.startswith("lambda/template.yaml"):
        return function_statements(document.partition("#")[2] or "Tick")
    doc = json.loads((INFRA / document).read_text())
    assert doc["Version"] == "2012-10-17"
    result: list[dict[str, Any]] = doc["Statement"]
    return result


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resources(statement: dict[str, Any]) -> list[str]:
    """A statement's resources as text: !Sub "arn:..." as its ARN pattern, !GetAtt as X.Arn."""
    return [
        r.get("Sub", r.get("GetAtt")) if isinstance(r, dict) else r
        for r in _listed(statement.get("Resource", []))
    ]


def granted(document: str) -> set[str]:
    """The actions a document allows (no wildcards, no Deny, no NotAction: all explicit)."""
    actions: set[str] = set()
    for statement in statements(document):
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        for action in _listed(statement["Action"]):
            assert "*" not in action, f"{document}: {action} is a wildcard"
            actions.add(action)
    return actions


# --- the comparisons ----------------------------------------------------------------------


# The cost gate (on by default) reads each queue's depth from SQS every tick.
TICK_SERVICES = {"autoscaling", "cloudwatch", "ec2", "sqs"}
# The services each mode calls: what lets the policies stay apart.
SERVICES: dict[str, set[str]] = {
    "advise": TICK_SERVICES,
    "run dry-run, SQLite": TICK_SERVICES,
    "history, SQLite": set(),  # a file: no AWS call, so no credentials needed
    "run dry-run, DynamoDB": {*TICK_SERVICES, "dynamodb"},
    "history, DynamoDB": {"dynamodb"},
    "catalog refresh": {"ec2"},
    "Lambda, dry-run": {*TICK_SERVICES, "dynamodb"},
    "Lambda scheduler, fan-out": {"sqs"},  # no tick: only the shards sent
    "Lambda worker, dry-run": {*TICK_SERVICES, "dynamodb"},
    "run --apply, SQLite": TICK_SERVICES,
    "run --apply, DynamoDB": {*TICK_SERVICES, "dynamodb"},
    "Lambda, apply": {*TICK_SERVICES, "dynamodb"},
    "Lambda worker, apply": {*TICK_SERVICES, "dynamodb"},
    # Groups in another account: scaler's own role assumes the role there, which reads and acts.
    "advise, another account": {"sts"},
    "advise, another account: target role": TICK_SERVICES,
    "run --apply, another account": {"sts", "dynamodb"},
    "run --apply, another account: target role": TICK_SERVICES,
    "Lambda, dry-run, another account": {"sts", "dynamodb"},
    "Lambda, dry-run, another account: target role": TICK_SERVICES,
}


def mismatches(document: str, recorded: dict[str, frozenset[str]]) -> dict[str, Any]:
    """What `document` grants that its modes never call, and what they call that it lacks."""
    called = set().union(*(recorded[mode] for mode in COVERAGE[document]))
    implied = {a: why for call in called for a, why in IMPLIED.get(call, {}).items()}
    grants = granted(document)
    polled = set(EVENT_SOURCE) if document.endswith("#Worker") else set()
    found = {
        "called, not granted": sorted(called - grants),
        "granted, never called": sorted(grants - called - set(implied) - polled),
        "checked by AWS on a call's behalf, not granted": {
            a: why for a, why in implied.items() if a not in grants
        },
    }
    return {what: actions for what, actions in found.items() if actions}


def test_each_policy_grants_exactly_what_its_modes_call(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every mode through its entry point, every call recorded: each policy document grants
    exactly its modes' calls (and what AWS checks on their behalf), no more, no less."""
    recorded = record_every_mode(aws, monkeypatch, tmp_path)
    assert {mode: {a.split(":")[0] for a in calls} for mode, calls in recorded.items()} == SERVICES
    readers = [mode for mode, calls in recorded.items() if "ec2:DescribeInstanceTypes" in calls]
    assert readers == ["catalog refresh"]  # ticks read the bundled (or a refreshed) catalog
    found = {document: mismatches(document, recorded) for document in sorted(COVERAGE)}
    assert {document: m for document, m in found.items() if m} == {}


@pytest.mark.parametrize("document", sorted(COVERAGE))
def test_only_reads_are_granted_on_every_resource_unconditionally(document: str) -> None:
    """A statement on Resource "*" without a condition may only describe, get or list."""
    for statement in statements(document):
        if resources(statement) != ["*"] or "Condition" in statement:
            continue
        writes = [
            a
            for a in _listed(statement["Action"])
            if not a.split(":")[1].startswith(READ_ONLY_PREFIXES)
        ]
        assert writes == [], f"{document} {statement.get('Sid')}: {writes} on every resource"


TAGGED = {"aws:ResourceTag/scaler": "apply"}


@pytest.mark.parametrize(
    "document",
    [
        "iam-apply.json",
        "iam-target-apply.json",
        "lambda/template.yaml",
        "lambda/template.yaml#Worker",
    ],
)
@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("autoscaling:SetDesiredCapacity", ":autoScalingGroupName/*"),
        ("autoscaling:StartInstanceRefresh", ":autoScalingGroupName/*"),
        ("ec2:CreateLaunchTemplateVersion", ":launch-template/*"),
        ("ec2:RunInstances", ":launch-template/*"),
    ],
)
def test_acting_needs_the_scaler_apply_tag(document: str, action: str, resource: str) -> None:
    """Every statement that lets scaler act on a group or its template requires scaler=apply."""
    matching = [
        s
        for s in statements(document)
        if action in _listed(s["Action"]) and any(r.endswith(resource) for r in resources(s))
    ]
    assert matching, f"{document}: no statement grants {action} on {resource}"
    for statement in matching:
        assert statement.get("Condition", {}).get("StringEquals") == TAGGED, statement.get("Sid")


@pytest.mark.parametrize(
    "document",
    [
        "iam-apply.json",
        "iam-target-apply.json",
        "lambda/template.yaml",
        "lambda/template.yaml#Worker",
    ],
)
@pytest.mark.parametrize(
    ("action", "condition"),
    [
        ("iam:PassRole", {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        ("ec2:CreateTags", {"StringEquals": {"ec2:CreateAction": "RunInstances"}}),
    ],
)
def test_what_a_refresh_needs_is_granted_only_for_launching(
    document: str, action: str, condition: dict[str, Any]
) -> None:
    """The role goes to EC2 only, and tags only on what RunInstances creates: never directly."""
    (statement,) = [s for s in statements(document) if action in _listed(s["Action"])]
    assert statement["Condition"] == condition
    assert "*" not in resources(statement)


def test_the_state_table_outlives_the_stack() -> None:
    """Deleting or replacing the stack keeps the audit log and the leases' table."""
    table = template()["Resources"]["StateTable"]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize(
    ("function", "actions"),
    [
        ("Tick", {"sqs:SendMessage"}),
        ("Worker", set(EVENT_SOURCE)),
    ],
)
def test_each_function_reaches_the_shard_queue_only_as_its_part_needs(
    function: str, actions: set[str]
) -> None:
    """The scheduler only sends to the shard queue; the worker's event source only reads and
    deletes from it; neither touches any other queue (no SAM-added policy on every queue)."""
    on_queue = [s for s in function_statements(function) if "ShardQueue.Arn" in resources(s)]
    assert {a for s in on_queue for a in _listed(s["Action"])} == actions
    assert all(resources(s) == ["ShardQueue.Arn"] for s in on_queue)
    worker = template()["Resources"]["Worker"]["Properties"]
    assert "Policies" not in worker, "SAM would add AWSLambdaSQSQueueExecutionRole: use Role"


def test_a_shard_not_done_goes_to_the_dead_letter_queue_not_back_to_a_worker() -> None:
    """A shard's minute is not retried (the next minute's message is the retry): the shard
    queue moves a message given back once to its dead-letter queue; the worker's event source
    reports failures item by item, one shard an invocation."""
    resources_ = template()["Resources"]
    queue = resources_["ShardQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"GetAtt": "ShardDeadLetters.Arn"},
        "maxReceiveCount": 1,
    }
    worker = resources_["Worker"]["Properties"]
    assert queue["VisibilityTimeout"] >= worker["Timeout"]  # Lambda refuses a shorter one
    shards = worker["Events"]["Shards"]["Properties"]
    assert (shards["BatchSize"], shards["FunctionResponseTypes"]) == (
        1,
        ["ReportBatchItemFailures"],
    )


def test_the_target_role_trusts_only_scaler_by_its_session_name() -> None:
    """The role in each other account may be assumed by scaler's role only, and only under the
    session name scaler uses (so the target account's CloudTrail shows every call as scaler's)."""
    (statement,) = json.loads((INFRA / "iam-target-trust.json").read_text())["Statement"]
    assert statement["Effect"] == "Allow"
    assert _listed(statement["Action"]) == ["sts:AssumeRole"]
    assert statement["Principal"]["AWS"].startswith("arn:aws:iam::")
    assert statement["Condition"] == {"StringEquals": {"sts:RoleSessionName": ROLE_SESSION_NAME}}


@pytest.mark.parametrize("document", ["iam-advise.json", "iam-apply.json", "lambda/template.yaml"])
def test_scaler_may_assume_only_the_target_role(document: str) -> None:
    """sts:AssumeRole is granted on the scaler-target role of each account, nothing wider."""
    (statement,) = [s for s in statements(document) if "sts:AssumeRole" in _listed(s["Action"])]
    # arn:aws:iam::*:role/scaler-target (the partition is ${AWS::Partition} in the template)
    arns = [r.replace("${AWS::Partition}", "aws") for r in resources(statement)]
    assert arns == ["arn:aws:iam::*:role/scaler-target"]
