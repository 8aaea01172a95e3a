"""Policies: the shipped example validates; every bad input names file, field and choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler.errors import PolicyError
from scaler.policy import GroupPolicy, load_policy, parse_policy, policy_schema
from scaler.rules import rules
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
