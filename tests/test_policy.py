"""Policies: the shipped example validates; every bad input names file, field and choices."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from scaler.cli import EXIT_BAD_INPUT, main
from scaler.errors import PolicyError
from scaler.instances.catalog import bundled_catalog
from scaler.models import Finding, Severity
from scaler.policy import GroupPolicy, load_policy, parse_policy, policy_schema
from scaler.rules import RuleContext, rules
from scaler.rules.memory import MemoryPressure
from scaler.sources.metric_map import resolve_metrics

POLICIES = Path(__file__).parent.parent / "policies"


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_validate(path: Path) -> None:
    """Every policy in policies/ is valid."""
    policy = load_policy(path)
    assert policy.groups


def test_example_policy_carries_its_settings() -> None:
    """The crash-processor example's settings reach the models."""
    group = load_policy(POLICIES / "crash-processor.yaml").group("crash-processor")
    assert group.asg_name == "crash-processor-asg"
    assert group.queue_name == "crash-reports"
    assert group.bounds() == (2, 40)
    assert group.capacity.scale_in_stabilization_minutes == 10
    assert group.rules.iowait_bound.sustain_minutes == 5
    assert group.rules.backlog_growing.max_message_age_s == 900


def test_unknown_rule_lists_the_registered_rules() -> None:
    """A misspelt rule name is refused with the list of valid rule names."""
    with pytest.raises(PolicyError) as err:
        parse_policy("groups:\n  - name: g\n    rules:\n      iowait_bond: {}\n", "p.yaml")
    text = str(err.value)
    assert "p.yaml" in text
    assert "groups[0].rules.iowait_bond: unknown rule 'iowait_bond'" in text
    assert ", ".join(rules.names()) in text


def test_unknown_field_lists_valid_fields_where_it_stands() -> None:
    """An unknown key deep in the policy names its path and the fields valid there."""
    with pytest.raises(PolicyError) as err:
        parse_policy("groups:\n  - name: g\n    capacity:\n      drain_mins: 5\n", "p.yaml")
    assert "groups[0].capacity.drain_mins: unknown field 'drain_mins'; valid: " in str(err.value)
    assert "drain_minutes" in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("groups: []\n", "groups: List should have at least 1 item"),
        (
            "mode: yolo\ngroups:\n  - name: g\n",
            "mode: Input should be 'dry-run' or 'apply' (got \"yolo\")",
        ),
        (
            "groups:\n  - name: g\n    min_size: 9\n    max_size: 3\n",
            "min_size 9 is above max_size 3",
        ),
        ("groups:\n  - name: g\n  - name: g\n", "repeated: g"),
        (
            "groups:\n  - name: g\n    rules:\n      iowait_bound:\n        sustain_minutes: 0\n",
            "groups[0].rules.iowait_bound.sustain_minutes: Input should be greater than or equal",
        ),
        ("- just\n- a list\n", "a policy is a mapping"),
        ("groups: [\n", "not valid YAML"),
    ],
)
def test_bad_values_are_named(text: str, expected: str) -> None:
    """Each bad value is a PolicyError naming the file and what is wrong."""
    with pytest.raises(PolicyError, match=r"^bad\.yaml") as err:
        parse_policy(text, "bad.yaml")
    assert expected in str(err.value)


def test_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    """A missing policy file is a PolicyError naming the path."""
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.yaml")


def test_schema_describes_every_rule() -> None:
    """The JSON Schema has a settings block for each registered rule, with descriptions."""
    schema = policy_schema()
    rules_schema = schema["$defs"]["RulesConfig"]["properties"]
    assert sorted(rules_schema) == rules.names()
    iowait = schema["$defs"]["IowaitBoundSettings"]["properties"]
    assert iowait["sustain_minutes"]["default"] == 5
    assert iowait["sustain_minutes"]["description"]


def test_bounds_take_the_tighter_of_group_and_policy() -> None:
    """Advice bounds are the tighter of the ASG's own and the policy's."""
    group = GroupPolicy(name="g", min_size=2, max_size=40)
    assert group.bounds(1, 100) == (2, 40)
    assert group.bounds(4, 30) == (4, 30)
    assert GroupPolicy(name="g").bounds() == (1, 100)
    assert GroupPolicy(name="g").bounds(0, 10) == (0, 10)


def test_disabled_rule_is_not_run() -> None:
    """`enabled: false` removes a rule from the group's rule list."""
    policy = parse_policy(
        "groups:\n  - name: g\n    rules:\n      cpu_bound:\n        enabled: false\n"
    )
    names = [r.name for r in policy.groups[0].enabled_rules()]
    assert "cpu_bound" not in names
    assert "iowait_bound" in names


def test_metric_overrides_as_the_readme_shows_them() -> None:
    """A custom CPU dimension, an own work_latency metric and 5-minute EBS sums all validate."""
    policy = parse_policy(
        "groups:\n"
        "  - name: g\n"
        "    metrics:\n"
        "      cpu_user: {extra_dimensions: {cpu: cpu-total}}\n"
        "      work_latency:\n"
        "        {namespace: CrashProcessor, metric_name: SecondsPerReport, stat: p50}\n"
        "      ebs_read_bytes: {period_s: 300, scale: 0.2}\n"
    )
    table = resolve_metrics(policy.groups[0].metrics)
    assert ("cpu", "cpu-total") in table["cpu_user"].dimensions
    assert table["work_latency"].metric_name == "SecondsPerReport"
    assert table["ebs_read_bytes"].period_s == 300


def test_work_latency_without_its_metric_is_an_error_naming_it() -> None:
    """The application's own metric has no default: leaving out its name says so."""
    with pytest.raises(PolicyError, match="work_latency"):
        parse_policy("groups:\n  - name: g\n    metrics:\n      work_latency: {stat: p50}\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "groups: [{name: a, instance_type: m5.xlarg}]",
            "groups[0].instance_type: type 'm5.xlarg' is not in the instance catalog",
        ),
        ("groups: [{name: a, instance_type: m5.xlarg}]", "did you mean m5.xlarge"),
        (
            "groups: [{name: a, instance_choice: {families: [m5, m5dd]}}]",
            "family 'm5dd' is not in the instance catalog (taken",
        ),
        ("groups: [{name: a, instance_choice: {families: [m5dd]}}]", "did you mean m5d"),
        (
            "groups: [{name: a}]\nprices: {m9.huge: 1.0}",
            "prices.m9.huge: priced type 'm9.huge' is not in the instance catalog",
        ),
        (
            "groups:\n  - name: a\n    min_size: 2\n    min_size: 3\n",
            "line 4, column 5: not valid YAML: key 'min_size' appears twice",
        ),
        ("groups: [{name: a}]\ngroups: [{name: b}]\n", "key 'groups' appears twice"),
        (
            "groups: [{name: a}]\ninstance_catalog: missing.json\n",
            "p.yaml: instance_catalog",
        ),
    ],
)
def test_policy_validate_checks_what_the_backtest_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    """`scaler policy validate`: unknown types, families, priced types, duplicate keys: exit 2."""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert main(["policy", "validate", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def _snapshot_without(tmp_path: Path, family: str) -> Path:
    """A `scaler catalog refresh`-style snapshot lacking one family."""
    doc = bundled_catalog().snapshot()
    doc["types"] = [t for t in doc["types"] if not t["instance_type"].startswith(f"{family}.")]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_refreshed_catalog_named_in_the_policy_is_what_advice_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """instance_catalog (relative to the policy) replaces the bundled catalog for backtests."""
    _snapshot_without(tmp_path, "m5d")
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "groups: [{name: default, instance_type: m5.xlarge}]\ninstance_catalog: instances.json\n"
    )
    assert load_policy(policy).catalog().get("m5d.xlarge") is None
    bundled = str(resources.files("scaler") / "data" / "incident-m5xlarge.csv")
    assert main(["backtest", bundled, "--policy", str(policy), "--format", "json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    proposed = {r["instance_type"] for r in advice["recommendations"] if r["instance_type"]}
    rows = {a["instance_type"] for r in advice["recommendations"] for a in r["alternatives"]}
    assert proposed and not any(t.startswith("m5d.") for t in proposed | rows)
    # ...and validation checks against it: m5d is now an unknown family.
    policy.write_text(
        "groups: [{name: d, instance_choice: {families: [m5d]}}]\n"
        "instance_catalog: instances.json\n"
    )
    with pytest.raises(PolicyError, match="family 'm5d' is not in the instance catalog"):
        load_policy(policy)


def test_rules_read_prices_through_the_context_not_the_bundled_table() -> None:
    """A policy price reaches the memory rule's cost sentence."""
    current = bundled_catalog().require("m5.xlarge")
    ctx = RuleContext(instance=current, catalog=bundled_catalog().with_prices({"r5.xlarge": 0.1}))
    finding = Finding(
        kind="memory_pressure",
        group="g",
        start=datetime(2026, 3, 2, tzinfo=UTC),
        end=None,
        severity=Severity.WARNING,
        summary="",
    )
    opinion = MemoryPressure().recommend(finding, ctx)
    assert opinion is not None and opinion.instance_type == "r5.xlarge"
    assert "-> 0.100" in opinion.reason
