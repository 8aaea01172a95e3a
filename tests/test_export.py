"""`scaler export` on the local AWS: seed the incident, export it, backtest the export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scaler.aws import Clients
from scaler.backtest import Overrides, run_backtest
from scaler.cli import EXIT_BAD_INPUT, EXIT_OK, main
from scaler.cli.demo import incident_text
from scaler.demo.embedded import LocalAws
from scaler.demo.seed import SeededGroup, seed_local_aws
from scaler.export import MAX_POINTS_PER_CALL, ExportPlan, plan_export, resolution_for_age
from scaler.policy import GroupPolicy, load_policy
from scaler.signals import floor_minute
from scaler.sim import scenarios
from scaler.sources.replay import read_replay_text

ROOT = Path(__file__).parent.parent
POLICY = ROOT / "policies" / "crash-processor.yaml"


@pytest.fixture
def seeded(clients: Clients) -> tuple[SeededGroup, timedelta]:
    """The incident in the local CloudWatch, ending a whole number of 5-minute periods ago."""
    trace = scenarios.incident()
    group = load_policy(POLICY).groups[0]
    now = floor_minute(datetime.now(UTC))
    now -= (now - (trace.window.end + timedelta(minutes=1))) % timedelta(minutes=5)
    seeded = seed_local_aws(
        clients,
        trace.window.model_copy(update={"group": group.name}),
        asg_name=group.asg_name,
        queue_name=group.queue_name,
        now=now,
    )
    return seeded, seeded.end - trace.window.end


def _findings(advice: dict[str, Any], shift: timedelta = timedelta(0)) -> list[tuple[Any, ...]]:
    def moved(stamp: str | None) -> str | None:
        if stamp is None:
            return None
        when = datetime.fromisoformat(stamp) - shift
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    return [
        (f["kind"], moved(f["start"]), moved(f["end"]), f["severity"]) for f in advice["findings"]
    ]


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_export_then_backtest_finds_what_the_seeded_data_holds(
    aws: LocalAws,
    seeded: tuple[SeededGroup, timedelta],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    file_format: str,
) -> None:
    """Seed, export, backtest with --plot: the same findings (iowait_bound onset included)."""
    group, shift = seeded
    out = tmp_path / f"incident.{file_format}"
    start = group.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (group.end + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code = main(
        [
            *("export", "--policy", str(POLICY), "--start", start, "--end", end),
            *("-o", str(out), "--endpoint-url", aws.endpoint_url),
        ]
    )
    said = capsys.readouterr().err
    assert code == EXIT_OK, said
    assert "1-minute data, the finest CloudWatch keeps" in said
    assert "ebs_byte_balance: 5-minute data" in said
    assert "in 1 GetMetricData call(s); the fewest possible: 1" in said
    assert not list(tmp_path.glob(".*.part"))  # the temporary file was renamed

    png = tmp_path / "incident.png"
    assert (
        main(
            [
                *("backtest", str(out), "--policy", str(POLICY)),
                *("--format", "json", "--plot", str(png)),
            ]
        )
        == EXIT_OK
    )
    exported = json.loads(capsys.readouterr().out)
    assert png.stat().st_size > 0

    trace = scenarios.incident()
    policy = load_policy(POLICY)
    window = trace.window.model_copy(update={"group": policy.groups[0].name})
    expected = run_backtest({window.group: window}, policy, Overrides()).to_json_dict()
    assert _findings(exported, shift) == _findings(expected)
    # ... and the iowait_bound onset of the bundled trace, the file `scaler demo` replays.
    bundled = run_backtest(read_replay_text(incident_text()), policy, Overrides()).to_json_dict()
    onset = {kind: start for kind, start, _, _ in _findings(exported, shift)}["iowait_bound"]
    assert onset == {kind: start for kind, start, _, _ in _findings(bundled)}["iowait_bound"]


def test_relative_times_and_stdout(
    aws: LocalAws, seeded: tuple[SeededGroup, timedelta], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--start -6h --end now` to stdout: CSV rows of every seeded signal for the group."""
    code = main(
        ["export", "--policy", str(POLICY), "--start", "-6h", "--endpoint-url", aws.endpoint_url]
    )
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    lines = captured.out.splitlines()
    assert lines[0] == "timestamp,signal,value,group"
    assert {line.split(",")[1] for line in lines[1:]} >= {"queue_visible", "cpu_iowait"}
    assert {line.split(",")[3] for line in lines[1:]} == {"crash-processor"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "-6h", "--group", "nope"], "--group 'nope' is not in the policy"),
        (["--start", "-500d"], "CloudWatch keeps no datapoints older than 455 days"),
        (["--start", "-1h", "--end", "-2h"], "is not before --end"),
        (["--start", "tomorrow"], "--start 'tomorrow': not a time"),
    ],
)
def test_bad_export_flags_exit_2(
    aws: LocalAws, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Flags an export cannot honour are one line and exit 2, before any AWS call."""
    assert main(["export", "--policy", str(POLICY), *args]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


NOW = datetime(2026, 3, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "period"),
    [
        (timedelta(hours=6), 60),
        (timedelta(days=15), 60),
        (timedelta(days=15, minutes=1), 300),
        (timedelta(days=63), 300),
        (timedelta(days=64), 3600),
        (timedelta(days=455), 3600),
    ],
)
def test_resolution_is_the_finest_cloudwatch_keeps_for_the_age(age: timedelta, period: int) -> None:
    """1 minute up to 15 days old, 5 minutes up to 63 days, 1 hour up to 455 days."""
    assert resolution_for_age(NOW - age, NOW) == period


@pytest.mark.parametrize(
    ("groups", "days"),
    [(1, 0.25), (1, 14), (3, 14), (40, 2), (1, 60), (200, 1)],
)
def test_slices_fill_each_call_and_take_the_fewest_calls(groups: int, days: float) -> None:
    """No slice asks one call for more than 100,800 datapoints; the count of calls is minimal."""
    policies = [GroupPolicy(name=f"g{i}") for i in range(groups)]
    plan = plan_export(policies, start=NOW - timedelta(days=days), end=NOW, now=NOW)
    periods = [s.period_s for t in plan.targets for s in t.metrics.values()]
    per_call = plan.queries_per_call
    calls_per_slice = -(-len(periods) // per_call)
    assert per_call <= 500 and calls_per_slice == -(-len(periods) // 500)
    for first, stop in plan.slices:
        seconds = (stop - first).total_seconds()
        for i in range(0, len(periods), per_call):
            points = sum(seconds // p for p in periods[i : i + per_call])
            assert points <= MAX_POINTS_PER_CALL or seconds <= 3600
    calls = len(plan.slices) * calls_per_slice
    assert calls <= max(plan.min_calls * 1.15, plan.min_calls + 1)


def test_several_groups_share_calls_and_get_a_group_column(
    aws: LocalAws, clients: Clients, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two groups in one export: one call for both, a `group` column, each group backtested."""
    trace = scenarios.incident()
    now = floor_minute(datetime.now(UTC))
    now -= (now - (trace.window.end + timedelta(minutes=1))) % timedelta(minutes=5)
    policy = tmp_path / "two.yaml"
    policy.write_text(
        "version: 1\ngroups:\n"
        + "".join(
            f"  - {{name: {name}, auto_scaling_group: {name}-asg, queue: {name}-q, "
            "instance_type: m5.xlarge}\n"
            for name in ("east", "west")
        )
    )
    for name, window in (("east", trace.window), ("west", trace.window.head(120))):
        seed_local_aws(
            clients,
            window.model_copy(update={"group": name}),
            asg_name=f"{name}-asg",
            queue_name=f"{name}-q",
            now=now - (trace.window.end - window.end),
        )
    out = tmp_path / "both.csv"
    start = (now - timedelta(minutes=trace.window.length)).strftime("%Y-%m-%dT%H:%MZ")
    end = now.strftime("%Y-%m-%dT%H:%MZ")
    code = main(
        [
            *("export", "--policy", str(policy), "--start", start, "--end", end),
            *("-o", str(out), "--endpoint-url", aws.endpoint_url),
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    assert "in 1 GetMetricData call(s)" in err
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,signal,value,group"
    assert {line.rsplit(",", 1)[1] for line in lines[1:]} == {"east", "west"}
    assert main(["backtest", str(out), "--policy", str(policy), "--format", "json"]) == EXIT_OK
    kinds = {(f["group"], f["kind"]) for f in json.loads(capsys.readouterr().out)["findings"]}
    assert ("east", "iowait_bound") in kinds
    assert ("west", "iowait_bound") not in kinds  # west's two hours end before the throttle


@pytest.mark.parametrize(
    ("signal", "age_days", "period", "scale"),
    [
        ("queue_sent", 1, 60, 1.0),  # Sum at its own period
        ("queue_sent", 30, 300, 0.2),  # a 5-minute Sum is five minutes of arrivals
        ("queue_sent", 100, 3600, 1 / 60),
        ("queue_visible", 100, 3600, 1.0),  # a Maximum means the same at any period
        ("ebs_byte_balance", 1, 300, 1.0),  # already 5-minute data
    ],
)
def test_coarser_periods_keep_each_signals_unit(
    signal: str, age_days: int, period: int, scale: float
) -> None:
    """Older data comes at a coarser period; sums are scaled back to per minute."""
    plan = plan_export(
        [GroupPolicy(name="g")],
        start=NOW - timedelta(days=age_days),
        end=NOW - timedelta(days=age_days) + timedelta(hours=6),
        now=NOW,
    )
    spec = plan.targets[0].metrics[signal]
    assert (spec.period_s, spec.scale) == (period, pytest.approx(scale))


@pytest.mark.parametrize(
    ("tty", "slices", "shown"), [(True, 3, True), (False, 3, False), (True, 1, False)]
)
def test_progress_bar_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tty: bool, slices: int, shown: bool
) -> None:
    """A bar on stderr for a long export on a terminal; silent in a pipe or for one call."""
    import io

    from scaler.cli import export_cmd

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return tty

    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    with export_cmd._progress(slices) as step:
        for _ in range(slices):
            step()
    assert ("export" in err.getvalue()) is shown


def test_a_failure_mid_export_leaves_no_file(
    seeded: tuple[SeededGroup, timedelta],
    clients: Clients,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second of several calls is refused: AwsCallError, and no file, whole or half."""
    from scaler.errors import AwsCallError
    from scaler.export import export_window
    from scaler.fileio import write_atomically
    from scaler.sources.cloudwatch import CloudWatchSource
    from tests.aws_faults import inject_fault

    group, _ = seeded

    def planned() -> ExportPlan:
        return plan_export(
            load_policy(POLICY).groups,
            start=group.start,
            end=group.end + timedelta(minutes=1),
            now=group.end + timedelta(minutes=1),
        )

    # An hour a call: as many datapoints as an hour of every query the policy maps.
    monkeypatch.setattr("scaler.export.MAX_POINTS_PER_CALL", planned().queries * 60)
    plan = planned()
    assert len(plan.slices) == 6

    def refuse_from_now_on(**_: object) -> None:
        inject_fault(clients.cloudwatch, "GetMetricData", "access_denied")

    clients.cloudwatch.meta.events.register(
        "after-call.cloudwatch.GetMetricData", refuse_from_now_on
    )
    target = tmp_path / "incident.csv"
    source = CloudWatchSource(clients.cloudwatch)
    with pytest.raises(AwsCallError, match="export stopped, nothing written: crash-processor"):
        write_atomically(target, lambda stream: export_window(source, plan, stream))
    assert list(tmp_path.iterdir()) == []
