"""The advice contract: numbers in every reason equal the fields, the proposed type's count is
its table row, held_by says what held the number, and capacity semantics match HPA and KEDA."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.aws import Clients
from scaler.backtest import Overrides, run_backtest
from scaler.capacity import CapacitySettings, Hold, Sizing, plan_capacity
from scaler.cli import EXIT_OK, main
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import seed_local_aws
from scaler.instances.catalog import bundled_catalog
from scaler.models import Advice, Recommendation, advice_line
from scaler.policy import default_policy, parse_policy
from scaler.signals import Window
from scaler.sim import scenarios
from tests.helpers import window_of

BUNDLED = str(resources.files("scaler") / "data" / "incident-m5xlarge.csv")
_price = bundled_catalog().price
_PLANNED = re.compile(r"\b(?:so|that is) (\d+) instances\b")
_ADVISED = re.compile(r"\badvise (\d+)\b")


def _plan(series: dict[str, float | list[float]], length: int = 10, **kw: object) -> object:
    s = CapacitySettings.model_validate({"target_utilization": 1.0, **kw})
    return plan_capacity(window_of(series, length=length), s, min_size=1, max_size=100)


@pytest.mark.parametrize(
    ("current", "arrivals", "expected", "held_by", "rule"),
    [
        # HPA: the band applies to the usage ratio before rounding up.
        (3, 310, 3, Hold.TOLERANCE, "demand worth 3.1 instances stays at 3 (3.1/3 = 1.03)"),
        (3, 340, 4, None, "demand worth 3.4 is outside the band: round up to 4"),
        (10, 1050, 10, Hold.TOLERANCE, "the README's case: 10.5/10 is within 10%"),
        (10, 1150, 12, None, "11.5/10 is outside: 12"),
        (1, 105, 1, Hold.TOLERANCE, "a fleet of one: 1.05 stays at 1"),
    ],
)
def test_tolerance_is_on_the_usage_ratio_before_rounding(
    current: int, arrivals: float, expected: int, held_by: Hold | None, rule: str
) -> None:
    """As the Kubernetes HPA's replica calculator: ratio first, then round."""
    series = {
        "instances": current,
        "queue_sent": arrivals,
        "queue_deleted": arrivals,
        "queue_visible": 0,
    }
    decision = _plan(series, per_instance_capacity=100).at(9)  # type: ignore[attr-defined]
    assert (decision.desired, decision.held_by) == (expected, held_by), rule


@pytest.mark.parametrize(
    ("sizing", "series", "messages_per_instance", "expected", "decided_by"),
    [
        # KEDA's own case: 200 visible + 100 in flight at 5 per instance gives 60.
        (
            "concurrency",
            {"instances": 10, "queue_visible": 200, "queue_in_flight": 100, "queue_deleted": 20},
            5.0,
            60,
            Sizing.CONCURRENCY,
        ),
        # auto: 10-minute jobs complete 0.2/min per instance, too coarse: concurrency decides,
        # with messages per instance measured as in flight / instances (5) while busy.
        (
            "auto",
            {"instances": 10, "queue_visible": 250, "queue_in_flight": 50, "queue_deleted": 2},
            None,
            60,
            Sizing.CONCURRENCY,
        ),
        # auto on fast work (100/min per instance): throughput decides.
        (
            "auto",
            {
                "instances": 10,
                "queue_visible": 0,
                "queue_in_flight": 50,
                "queue_sent": 1500,
                "queue_deleted": 1000,
            },
            None,
            15,
            Sizing.THROUGHPUT,
        ),
    ],
)
def test_concurrency_sizing_as_keda(
    sizing: str,
    series: dict[str, float],
    messages_per_instance: float | None,
    expected: int,
    decided_by: Sizing,
) -> None:
    """instances = ceil((visible + in flight) / messages per instance), and it says so."""
    plan = _plan(
        series,
        sizing=sizing,
        messages_per_instance=messages_per_instance,
        per_instance_capacity=100,
    )
    decision = plan.at(9)  # type: ignore[attr-defined]
    assert decision.raw == expected
    assert decision.sizing is decided_by
    assert decision.evidence()["sizing"] == decided_by.value
    assert decision.reason.startswith(f"{decided_by.value.capitalize()} sizing")


def test_no_scale_in_while_the_burst_balance_falls() -> None:
    """A light load would scale in, but the EBS balance is falling: hold, and say why."""
    balance = np.full(30, np.nan)
    balance[::5] = [100, 95, 88, 80, 71, 62]
    series = {
        "instances": 8,
        "queue_sent": 100.0,
        "queue_deleted": 100.0,
        "queue_visible": 0,
        "ebs_byte_balance": balance,
    }
    plan = _plan(series, length=30, per_instance_capacity=100)
    decision = plan.at(29)  # type: ignore[attr-defined]
    assert decision.raw == 1
    assert decision.desired == 8
    assert decision.held_by is Hold.BURST_BALANCE
    assert "falling EBS burst balance" in decision.reason


def test_bundled_incident_without_type_never_scales_in_on_a_falling_balance() -> None:
    """Without --instance-type: no advice below the fleet's size while the balance falls."""
    from scaler.sources.replay import read_replay

    windows = read_replay(BUNDLED)
    advice = run_backtest(windows, default_policy())
    window = windows["default"]
    balance = window.series["ebs_byte_balance"]
    falling_from = next(i for i in range(len(balance)) if balance[i] < 100)
    late = [r for r in advice.recommendations if r.at >= window.time_at(falling_from)]
    assert late
    assert all(
        r.desired_capacity is None
        or r.current_capacity is None
        or r.desired_capacity >= r.current_capacity
        for r in late
    )


def _reason_matches_fields(rec: Recommendation) -> None:
    """The number in each reason is the field; held_by is set exactly when they differ."""
    ev = rec.evidence
    if rec.desired_capacity is None:
        return
    planned = [int(m) for m in _PLANNED.findall(rec.reason.split(" Instance type (")[0])]
    advised = [int(m) for m in _ADVISED.findall(rec.reason)]
    assert planned == [ev["raw_desired"]], rec.reason
    assert advised == [rec.desired_capacity], rec.reason
    assert (ev["held_by"] is not None) == (ev["raw_desired"] != rec.desired_capacity), rec.reason
    assert (ev["held_by"] is not None) == ("held by" in rec.reason), rec.reason
    if rec.instance_type and rec.instance_type_capacity is not None:
        on_type = f"On {rec.instance_type} that is {rec.instance_type_capacity} instances"
        assert on_type in rec.reason
    if rec.current_capacity is not None:
        assert f"(now {rec.current_capacity})" in rec.reason


def _traces() -> list[tuple[str, Window, str | None]]:
    from scaler.sources.replay import read_replay

    out = [("bundled", read_replay(BUNDLED)["default"], "m5.xlarge")]
    out.append(("bundled, type unknown", out[0][1], None))
    for name, trace in [
        ("incident", scenarios.incident()),
        ("cpu_bound", scenarios.cpu_bound()),
        ("diurnal", scenarios.healthy_diurnal(0.5)),
        ("gappy", scenarios.gappy(scenarios.incident(), hole_at=200)),
        ("without_ebs", scenarios.without_ebs(scenarios.incident())),
    ]:
        out.append((name, trace.window, "m5.xlarge"))
    return out


@pytest.mark.parametrize(("name", "window", "instance_type"), _traces())
def test_every_reason_states_its_fields_on_bundled_and_generated_traces(
    name: str, window: Window, instance_type: str | None
) -> None:
    """Over whole traces: every recommendation's numbers, held_by and summary agree."""
    advice = run_backtest(
        {"default": window}, default_policy(), Overrides(instance_type=instance_type)
    )
    assert advice.recommendations, name
    for rec in advice.recommendations:
        _reason_matches_fields(rec)
        assert rec.summary == advice_line(rec, instance_type)


@settings(max_examples=60, deadline=None)
@given(
    current=st.integers(1, 40),
    arrivals=st.lists(st.floats(0, 5000), min_size=12, max_size=12),
    backlog=st.lists(st.floats(0, 50_000), min_size=12, max_size=12),
    per_instance=st.floats(10, 1000),
    tolerance=st.sampled_from([0.0, 0.1, 0.25]),
    bounds=st.tuples(st.integers(1, 10), st.integers(10, 60)),
)
def test_reason_and_held_by_agree_with_the_fields_on_generated_load(
    current: int,
    arrivals: list[float],
    backlog: list[float],
    per_instance: float,
    tolerance: float,
    bounds: tuple[int, int],
) -> None:
    """Property: at every minute, 'that is N' = raw, 'advise M' = desired, held_by iff N != M."""
    window = window_of(
        {
            "instances": current,
            "queue_sent": arrivals,
            "queue_deleted": arrivals,
            "queue_visible": backlog,
        }
    )
    s = CapacitySettings(per_instance_capacity=per_instance, tolerance=tolerance, measure_minutes=1)
    plan = plan_capacity(window, s, min_size=bounds[0], max_size=bounds[1])
    for i in range(window.length):
        d = plan.at(i)
        if d.desired is None:
            continue
        rec = Recommendation(
            at=window.time_at(i),
            group="g",
            desired_capacity=d.desired,
            instance_type=None,
            reason=d.reason,
            current_capacity=d.current,
            evidence=d.evidence(),
        )
        _reason_matches_fields(rec)


def test_proposed_type_count_is_its_table_row_and_the_summary_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`desired_capacity` is on the current type; the type's count is its alternatives row."""
    assert main(["backtest", BUNDLED, "--instance-type", "m5.xlarge", "--format", "json"]) == 0
    advice = Advice.model_validate(json.loads(capsys.readouterr().out))
    typed = [r for r in advice.recommendations if r.instance_type]
    assert typed
    for rec in typed:
        assert rec.instance_type_capacity is not None
        if rec.alternatives:
            row = next(a for a in rec.alternatives if a.instance_type == rec.instance_type)
            assert row.instances_needed == rec.instance_type_capacity
            same = next(a for a in rec.alternatives if a.strategy.value == "same_type")
            assert same.instances_needed == rec.desired_capacity
        head = f"{rec.desired_capacity} × m5.xlarge now"
        assert rec.summary.startswith(head)
        assert f"or {rec.instance_type_capacity} × {rec.instance_type}" in rec.summary
    nvme = [r for r in typed if r.instance_type == "m5d.xlarge"]
    assert nvme and all("(needs the hot I/O moved to local NVMe)" in r.summary for r in nvme)


def test_text_output_reads_as_counts_on_each_type(capsys: pytest.CaptureFixture[str]) -> None:
    """Never 'desired capacity 20 ..., instance type m5.4xlarge' (read as 20 × m5.4xlarge)."""
    assert main(["backtest", BUNDLED, "--instance-type", "m5.xlarge"]) == EXIT_OK
    out = capsys.readouterr().out
    assert not re.search(r"desired capacity \d+.*instance type", out)
    assert re.search(r"\d+ × m5\.xlarge now \(from 8\); or \d+ × m5d\.xlarge \(needs the hot", out)


def test_unknown_instance_type_is_said_first_with_what_it_costs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without the type, the top of the output says EBS-aware sizing is off and how to fix it."""
    assert main(["backtest", BUNDLED]) == EXIT_OK
    out = capsys.readouterr().out
    note = out.index("Instance type unknown")
    assert note < out.index("Findings")
    assert "EBS-aware sizing" in out[note:] and "--instance-type" in out[note:]


@pytest.mark.parametrize(
    ("choice", "allowed", "proposes"),
    [
        ("families: [m5]", lambda t: t.startswith("m5."), True),
        ("families: [m5, m5d]", lambda t: t.split(".")[0] in ("m5", "m5d"), True),
        ("families: [c5]\n      keep_vcpus: true", lambda t: t == "c5.xlarge", False),
        ("max_price_per_hour: 0.2", lambda t: (_price(t) or 1) <= 0.2, False),
    ],
)
def test_type_proposals_and_alternatives_obey_instance_choice(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    choice: str,
    allowed: object,
    proposes: bool,
) -> None:
    """Every proposal and every row obeys instance_choice; when none fits, none is proposed."""
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "groups:\n  - name: default\n    instance_type: m5.xlarge\n"
        f"    instance_choice:\n      {choice}\n"
    )
    parse_policy(policy.read_text())
    args = ["backtest", BUNDLED, "--policy", str(policy), "--format", "json"]
    assert main(args) == EXIT_OK
    advice = Advice.model_validate(json.loads(capsys.readouterr().out))
    proposed = {r.instance_type for r in advice.recommendations if r.instance_type}
    rows = {a.instance_type for r in advice.recommendations for a in r.alternatives}
    check = allowed if callable(allowed) else None
    assert check is not None
    assert all(check(t) for t in proposed | (rows - {"m5.xlarge"})), proposed | rows
    assert bool(proposed) is proposes
    if not proposes:
        assert any("instance_choice" in r.reason for r in advice.recommendations)


def test_held_numbers_never_contradict_the_reason() -> None:
    """The issue's case: stabilization holds 7 while the plan says 4; the reason says both."""
    sent = np.concatenate((np.full(10, 700.0), np.full(10, 400.0)))
    series = {"instances": 8, "queue_sent": sent, "queue_deleted": sent, "queue_visible": 0}
    s = CapacitySettings(
        per_instance_capacity=100,
        target_utilization=1.0,
        measure_minutes=1,
        scale_in_stabilization_minutes=5,
    )
    plan = plan_capacity(window_of(series), s, min_size=1, max_size=100)
    d = plan.at(12)
    assert (d.raw, d.desired, d.held_by) == (4, 7, Hold.SCALE_IN_STABILIZATION)
    assert "so 4 instances" in d.reason and "advise 7 (now 8)" in d.reason
    assert "held by scale-in stabilization" in d.reason
    assert math.isfinite(float(plan.need[12]))


def test_advise_on_an_unreadable_group_prints_no_healthy_verdict(
    aws: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A group AWS does not know: the error comes first; no 'none' or 'within tolerance'."""
    policy = tmp_path / "p.yaml"
    policy.write_text("groups:\n  - name: ghost\n")
    code = main(["advise", "--policy", str(policy), "--endpoint-url", aws.endpoint_url])
    out = capsys.readouterr().out
    assert code == 1
    assert out.index("Groups that could not be evaluated") < out.index("Findings")
    assert "ghost" in out
    assert "no rule found the fleet in a named state" not in out
    assert "capacity stayed within tolerance" not in out
    assert "no verdict for the 1 group(s) that could not be read" in out


def test_advise_on_aws_prints_counts_per_type_that_agree_with_the_table(
    clients: Clients, aws: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end: a seeded throttle on the local AWS, `scaler advise` as a user runs it."""
    incident = scenarios.incident()
    assert incident.throttle_onset is not None
    length = int((incident.throttle_onset - incident.window.start).total_seconds() // 60) + 8
    seed_local_aws(
        clients,
        incident.window.head(length).model_copy(update={"group": "crash-processor"}),
        asg_name="crash-processor-asg",
        queue_name="crash-reports",
        min_size=2,
        max_size=40,
        now=datetime.now(UTC),
    )
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "groups:\n  - name: crash-processor\n    auto_scaling_group: crash-processor-asg\n"
        "    queue: crash-reports\n"
    )
    args = ["advise", "--policy", str(policy), "--endpoint-url", aws.endpoint_url]
    assert main([*args, "--format", "json"]) == EXIT_OK
    advice = Advice.model_validate(json.loads(capsys.readouterr().out))
    (rec,) = [r for r in advice.recommendations if r.desired_capacity is not None]
    assert rec.instance_type == "m5d.xlarge"
    row = next(a for a in rec.alternatives if a.instance_type == rec.instance_type)
    same = next(a for a in rec.alternatives if a.strategy.value == "same_type")
    assert rec.instance_type_capacity == row.instances_needed
    assert same.instances_needed == rec.desired_capacity
    expected = (
        f"{rec.desired_capacity} × m5.xlarge now (from 8); or {row.instances_needed} × "
        "m5d.xlarge (needs the hot I/O moved to local NVMe)"
    )
    assert rec.summary == expected
    assert main(args) == EXIT_OK
    assert f"[crash-processor] {expected}" in capsys.readouterr().out


def _replay(tmp_path: Path, series: dict[str, float], minutes: int = 15) -> Path:
    """A replay CSV holding `series` constant for `minutes` minutes."""
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    lines = ["timestamp,signal,value"]
    for m in range(minutes):
        at = (start + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines += [f"{at},{name},{value:g}" for name, value in series.items()]
    path = tmp_path / "replay.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("capacity", "series", "advised", "says"),
    [
        # The README's HPA case: demand worth 3.1 instances on 3 stays at 3 (no advice to change).
        (
            "{per_instance_capacity: 100, target_utilization: 1.0}",
            {"instances": 3, "queue_sent": 310, "queue_deleted": 310, "queue_visible": 0},
            None,
            None,
        ),
        (
            "{per_instance_capacity: 100, target_utilization: 1.0}",
            {"instances": 3, "queue_sent": 340, "queue_deleted": 340, "queue_visible": 0},
            4,
            "Throughput sizing",
        ),
        # The README's KEDA case: 200 visible + 100 in flight at 5 per instance gives 60.
        (
            "{sizing: concurrency, messages_per_instance: 5}",
            {"instances": 10, "queue_visible": 200, "queue_in_flight": 100, "queue_deleted": 20},
            60,
            "Concurrency sizing (the policy's sizing): 200 visible + 100 in flight at 5 per",
        ),
    ],
)
def test_readme_capacity_cases_through_the_command_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    capacity: str,
    series: dict[str, float],
    advised: int | None,
    says: str | None,
) -> None:
    """`scaler backtest --policy` on the README's tolerance and concurrency cases."""
    policy = tmp_path / "p.yaml"
    policy.write_text(f"groups:\n  - name: default\n    max_size: 100\n    capacity: {capacity}\n")
    args = ["backtest", str(_replay(tmp_path, series)), "--policy", str(policy)]
    assert main([*args, "--format", "json"]) == EXIT_OK
    recs = json.loads(capsys.readouterr().out)["recommendations"]
    sized = [r for r in recs if r["desired_capacity"] is not None]
    if advised is None:
        assert sized == []
        return
    assert sized[-1]["desired_capacity"] == advised
    assert says is not None and says in sized[-1]["reason"]


def _rec(**fields: object) -> Recommendation:
    base: dict[str, object] = {
        "at": datetime(2026, 3, 2, tzinfo=UTC),
        "group": "g",
        "desired_capacity": None,
        "instance_type": None,
        "reason": "",
    }
    return Recommendation.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("fields", "current_type", "line"),
    [
        (
            {
                "desired_capacity": 20,
                "current_capacity": 8,
                "instance_type": "m5.4xlarge",
                "instance_type_capacity": 5,
            },
            "m5.xlarge",
            "20 × m5.xlarge now (from 8); or 5 × m5.4xlarge",
        ),
        (
            {
                "desired_capacity": 24,
                "current_capacity": 8,
                "instance_type": "m5d.xlarge",
                "instance_type_capacity": 11,
                "instance_type_change": "the hot I/O moved to local NVMe",
            },
            "m5.xlarge",
            "24 × m5.xlarge now (from 8); or 11 × m5d.xlarge "
            "(needs the hot I/O moved to local NVMe)",
        ),
        (
            {"desired_capacity": 8, "current_capacity": 8},
            "m5.xlarge",
            "8 × m5.xlarge now (no change)",
        ),
        ({"desired_capacity": 5, "current_capacity": 8}, None, "5 instances now (from 8)"),
        (
            {"instance_type": "r5.xlarge"},
            "m5.xlarge",
            "r5.xlarge (count unknown: no demand measured)",
        ),
        (
            {"evidence": {"action": "instance_refresh"}},
            "m5.xlarge",
            "instance refresh (a mitigation, not a fix); no capacity change",
        ),
        ({}, None, "no capacity opinion"),
    ],
)
def test_advice_line_is_one_form_for_every_output(
    fields: dict[str, object], current_type: str | None, line: str
) -> None:
    """The one-line form the text, JSON `summary` and pager summary all use."""
    assert advice_line(_rec(**fields), current_type) == line
