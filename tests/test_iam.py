"""Least privilege: the IAM policies in infra/ grant exactly the AWS calls scaler makes.

Each mode runs through its real entry point (`scaler.cli.main`, the Lambda's `run_invocation`)
against the local AWS, with the state store it uses. A before-call hook on every client scaler
makes records the IAM actions AWS authorizes for each call (TransactWriteItems is authorized
item by item: dynamodb:ConditionCheckItem, PutItem, DeleteItem). Each policy document is then
compared with the modes it is for: no call ungranted, no grant never called, except the few
permissions AWS checks on scaler's behalf that no local server exercises (`IMPLIED`).
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
from scaler.aws import Clients
from scaler.cli import EXIT_OK, main
from scaler.control import create_table
from scaler.demo.embedded import LOCAL_CREDENTIALS, LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.lambda_handler import run_invocation
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

# botocore's service id -> the IAM action prefix AWS authorizes its calls under.
IAM_PREFIX = {
    "Auto Scaling": "autoscaling",
    "CloudWatch": "cloudwatch",
    "DynamoDB": "dynamodb",
    "EC2": "ec2",
    "SNS": "sns",
    "SQS": "sqs",
    "SSM": "ssm",
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

    def policy(self, state: str) -> Path:
        """A policy for both groups, its state in `state`: a SQLite file, or dynamodb:TABLE."""
        if state.startswith("dynamodb:"):
            table = state.removeprefix("dynamodb:")
            create_table(self.clients.dynamodb, table)
            block = f"  dynamodb_table: {table}\n"
        else:
            block = f"  path: {self.folder / state}.db\n"
        path = self.folder / f"policy-{state.replace(':', '-')}.yaml"
        path.write_text(
            "groups:\n"
            "  - name: crash-processor\n"
            "    auto_scaling_group: crash-asg\n"
            "    queue: crash-reports\n"
            "    max_size: 40\n"
            # Held at its size, so its only action is the type change the incident advises
            # (one group cannot do both in a tick: the first action starts the cooldown).
            "  - name: typed-processor\n"
            "    auto_scaling_group: typed-asg\n"
            "    queue: typed-reports\n"
            "    max_size: 8\n"
            "    type_change: {apply: true}\n"
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


def make_world(aws: LocalAws, folder: Path) -> World:
    """The local AWS emptied, then the incident seeded on both groups (8 x m5.xlarge each)."""
    aws.reset()
    folder.mkdir(parents=True)
    clients = MAKE_CLIENTS(boto3.Session(**LOCAL_CREDENTIALS), endpoint_url=aws.endpoint_url)
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
    return World(aws=aws, clients=clients, folder=folder, template_id=templates["typed-asg"])


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
    "lambda/template.yaml": ("Lambda, dry-run", "Lambda, apply"),
}


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

    worlds = iter(range(4))

    def world() -> World:
        return make_world(aws, folder / f"world-{next(worlds)}")

    # The two places an entry point makes its clients: the CLI's, and catalog refresh's.
    monkeypatch.setattr(scaler.cli.common, "make_clients", make_watched_clients)
    monkeypatch.setattr(scaler.aws, "make_clients", make_watched_clients)
    calm = world()
    return {
        "advise": advise(calm, recorder),
        "run dry-run, SQLite": run(calm, recorder, "dry", apply=False),
        "history, SQLite": history(calm, recorder, "dry"),
        "run dry-run, DynamoDB": run(calm, recorder, "dynamodb:dry", apply=False),
        "history, DynamoDB": history(calm, recorder, "dynamodb:dry"),
        "catalog refresh": catalog_refresh(calm, recorder),
        "Lambda, dry-run": lambda_tick(calm, recorder, "lambda-dry", apply=False),
        "run --apply, SQLite": run(world(), recorder, "apply", apply=True),
        "run --apply, DynamoDB": run(world(), recorder, "dynamodb:apply", apply=True),
        "Lambda, apply": lambda_tick(world(), recorder, "lambda-apply", apply=True),
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


def statements(document: str) -> list[dict[str, Any]]:
    """Every statement of a policy document, or of the Lambda function's inline policies."""
    if document == "lambda/template.yaml":
        policies = template()["Resources"]["Tick"]["Properties"]["Policies"]
        # SAM's policy templates (DynamoDBCrudPolicy, ...) grant more than scaler calls.
        assert all(set(p) == {"Statement"} for p in policies), "list the actions instead"
        return [s for p in policies for s in p["Statement"]]
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
    "run --apply, SQLite": TICK_SERVICES,
    "run --apply, DynamoDB": {*TICK_SERVICES, "dynamodb"},
    "Lambda, apply": {*TICK_SERVICES, "dynamodb"},
}


def mismatches(document: str, recorded: dict[str, frozenset[str]]) -> dict[str, Any]:
    """What `document` grants that its modes never call, and what they call that it lacks."""
    called = set().union(*(recorded[mode] for mode in COVERAGE[document]))
    implied = {a: why for call in called for a, why in IMPLIED.get(call, {}).items()}
    grants = granted(document)
    found = {
        "called, not granted": sorted(called - grants),
        "granted, never called": sorted(grants - called - set(implied)),
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


@pytest.mark.parametrize("document", ["iam-apply.json", "lambda/template.yaml"])
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


@pytest.mark.parametrize("document", ["iam-apply.json", "lambda/template.yaml"])
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
