"""Trend detectors on generated traces: slopes near the truth, no findings on the controls."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.backtest import Overrides, run_backtest
from scaler.cli import EXIT_BAD_INPUT, EXIT_OK, main
from scaler.models import Advice
from scaler.policy import default_policy
from scaler.rules.base import RuleContext
from scaler.rules.latency import LatencyGrowth
from scaler.rules.memory import MemoryLeak, MemoryPressure
from scaler.rules.trend import Summary, bucket, fit_buckets, restarts
from scaler.signals import Window
from scaler.sim import scenarios
from scaler.sim.replay_csv import write_replay
from tests import trend_traces
from tests.helpers import window_of

CTX = RuleContext()


def _advise(window: Window) -> Advice:
    return run_backtest({"default": window}, default_policy(), Overrides(instance_type="m5.xlarge"))


def test_theil_sen_ignores_a_huge_outlier() -> None:
    """One wild point does not bend the Theil-Sen slope the rules fit (it bends least squares)."""
    x = np.arange(20.0)
    y = 2 * x + 1
    y[10] = 500
    fits = fit_buckets(y, count=len(x), min_present=3)
    slope, intercept, confidence = fits.slope[-1], fits.value_at(len(x) - 1, 0), fits.confidence[-1]
    assert slope == pytest.approx(2.0)
    assert intercept == pytest.approx(1.0)
    assert confidence > 0.9


def test_leak_under_gc_sawtooth_is_found_with_slope_near_the_truth() -> None:
    """1%/hour under a 5% saw-tooth: slope within 25%, and a time to exhaustion."""
    findings = MemoryLeak().evaluate(trend_traces.leak(), CTX).findings
    assert len(findings) == 1
    ev = findings[0].evidence
    assert ev["slope_pct_per_hour"] == pytest.approx(1.0, rel=0.25)
    hours = ev["hours_to_exhaustion"]
    assert isinstance(hours, float)
    # Floor ends near 52%, peaks 5% above: about 43 hours to 100%.
    assert 30 < hours < 55
    assert findings[0].end is None


def test_leak_survives_missing_data_and_irregular_sampling() -> None:
    """Dropping 30% of samples and a 40-minute hole leaves the slope within 25%."""
    window = trend_traces.leak(seed=4)
    mem = window.series["mem_used"].copy()
    rng = np.random.default_rng(9)
    mem[rng.random(len(mem)) < 0.3] = np.nan
    mem[300:340] = np.nan
    findings = MemoryLeak().evaluate(window_of({"mem_used": mem}), CTX).findings
    assert findings
    assert findings[-1].evidence["slope_pct_per_hour"] == pytest.approx(1.0, rel=0.25)


def test_one_spike_to_100_percent_does_not_bend_the_leak_slope() -> None:
    """An OOM-like spike for a minute leaves the fitted slope near the truth."""
    window = trend_traces.leak(seed=5)
    mem = window.series["mem_used"].copy()
    mem[400:402] = 100.0
    findings = MemoryLeak().evaluate(window_of({"mem_used": mem}), CTX).findings
    assert findings[-1].evidence["slope_pct_per_hour"] == pytest.approx(1.0, rel=0.25)


@pytest.mark.parametrize(
    "window",
    [
        trend_traces.leak(slope_per_hour=0.0),
        trend_traces.spikes(),
        scenarios.incident().window,
    ],
    ids=["flat-sawtooth", "gc-spikes", "incident"],
)
def test_flat_memory_is_not_a_leak(window: Window) -> None:
    """Flat memory, with or without spikes, is no leak."""
    assert not MemoryLeak().evaluate(window, CTX).findings


def test_two_minute_spikes_over_the_threshold_are_not_pressure() -> None:
    """GC spikes that cross 90% for two minutes and fall back are not memory pressure."""
    assert not MemoryPressure().evaluate(trend_traces.spikes(), CTX).findings


def test_long_periodic_peaks_are_pressure_with_period_and_peak() -> None:
    """Peaks of 97% for 20 minutes every 4 hours: found, with period, duration and peak."""
    window = trend_traces.spikes(hours=24, base=70, peak=97, every=240, width=20)
    findings = MemoryPressure().evaluate(window, CTX).findings
    assert len(findings) == 6
    ev = findings[-1].evidence
    assert ev["peak_pct"] == pytest.approx(97)
    assert ev["period_hours"] == pytest.approx(4.0)
    assert ev["typical_minutes"] == pytest.approx(20)
    assert "every 4.0 hours" in findings[-1].summary


def test_pressure_advice_names_a_memory_optimized_type_and_its_cost() -> None:
    """For pressure on m5.xlarge the advice is r5.xlarge (same vCPUs) with the price delta."""
    window = trend_traces.spikes(hours=6, base=70, peak=97, every=240, width=20)
    advice = _advise(window)
    typed = [r for r in advice.recommendations if r.instance_type]
    assert typed
    assert typed[0].instance_type.startswith("r")
    assert "same 4 vCPUs" in typed[0].reason
    assert "USD/hour" in typed[0].reason


def test_latency_growth_reports_fitted_first_last_and_ratio() -> None:
    """9 ms to 146 ms under 15% noise: the fit and the growth ratio are reported."""
    findings = LatencyGrowth().evaluate(trend_traces.latency(), CTX).findings
    assert len(findings) == 1
    ev = findings[0].evidence
    assert ev["source"] == "work_latency"
    first, last, ratio = ev["first_s"], ev["last_s"], ev["growth_ratio"]
    assert isinstance(first, float) and isinstance(last, float) and isinstance(ratio, float)
    assert last == pytest.approx(0.146, rel=0.25)
    assert first < 0.04
    assert ratio > 3


def test_flat_latency_with_noise_is_no_growth() -> None:
    """50 ms with 15% noise is not a slowdown."""
    window = trend_traces.latency(first_s=0.05, last_s=0.05)
    assert not LatencyGrowth().evaluate(window, CTX).findings


def test_latency_without_work_latency_is_derived_from_a_busy_queue() -> None:
    """No work_latency: time per message comes from throughput while the queue is busy."""
    n = 360
    deleted = np.linspace(2000, 400, n)  # 8 instances getting slower, backlog always there
    window = window_of({"queue_deleted": deleted, "instances": 8.0, "queue_visible": 50_000.0})
    findings = LatencyGrowth().evaluate(window, CTX).findings
    assert findings
    assert findings[0].evidence["source"] == "derived_from_throughput"


def test_trend_advice_names_its_mitigation() -> None:
    """Leak and latency findings come with a labelled mitigation: recycling, not a fix."""
    for window in (trend_traces.leak(), trend_traces.latency()):
        advice = _advise(window)
        mitigations = [
            r for r in advice.recommendations if r.evidence.get("action") == "instance_refresh"
        ]
        assert mitigations
        assert mitigations[0].reason.startswith("Mitigation, not a fix")


def test_trend_rules_are_causal() -> None:
    """A window cut at minute t marks minute t as the full window does."""
    window = trend_traces.leak()
    full = MemoryLeak().evaluate(window, CTX).active
    for cut in (240, 400, 600):
        head = Window(
            group="default",
            start=window.start,
            length=cut,
            series={k: v[:cut] for k, v in window.series.items()},
        )
        assert (MemoryLeak().evaluate(head, CTX).active == full[:cut]).all()


@pytest.mark.parametrize(
    ("make", "kind", "fields"),
    [
        (trend_traces.leak, "memory_leak", {"slope_pct_per_hour", "hours_to_exhaustion"}),
        (trend_traces.latency, "latency_growth", {"first_s", "last_s", "growth_ratio"}),
    ],
)
def test_backtest_command_reports_the_trend_with_signals_md_evidence(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[], Window],
    kind: str,
    fields: set[str],
) -> None:
    """`scaler backtest --format json` on a trace: the kind, its contract fields, a mitigation."""
    path = tmp_path / f"{kind}.csv"
    with path.open("w") as stream:
        write_replay([make()], stream)
    assert main(["backtest", str(path), "--format", "json"]) == EXIT_OK
    advice = json.loads(capsys.readouterr().out)
    (finding,) = [f for f in advice["findings"] if f["kind"] == kind]
    assert fields <= set(finding["evidence"])
    assert any(r["reason"].startswith("Mitigation, not a fix") for r in advice["recommendations"])


def test_backtest_command_finds_nothing_on_the_flat_control(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Flat memory with two-minute spikes, through the command line: no trend finding."""
    path = tmp_path / "control.csv"
    with path.open("w") as stream:
        write_replay([trend_traces.spikes()], stream)
    assert main(["backtest", str(path), "--format", "json"]) == EXIT_OK
    kinds = {f["kind"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert not kinds & {"memory_leak", "memory_pressure", "latency_growth"}


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        # A GC saw-tooth climbing 50 -> 54.5 within each 10-minute bucket.
        ("max", [54.5, 54.5]),  # the peaks memory.py asks for (not the median)
        ("min", [50.0, 50.0]),  # the floor a leak lifts
        ("median", [52.25, 52.25]),
    ],
)
def test_bucket_summaries_are_what_they_are_named(how: Summary, expected: list[float]) -> None:
    """Each bucket summary is its own reduction: 'max' is the saw-tooth's peak, not its middle."""
    sawtooth = np.tile(np.linspace(50.0, 54.5, 10), 2)
    assert bucket(sawtooth, 10, how).tolist() == pytest.approx(expected)


def test_unknown_bucket_summary_is_rejected_with_the_valid_ones() -> None:
    """A misspelt summary is an error naming the valid ones, never a silent median."""
    with pytest.raises(ValueError, match="valid: min, median, max"):
        bucket(np.arange(20.0), 10, "mean")  # type: ignore[arg-type]


def _bundled_slice(tmp_path: Path, minutes: int) -> Path:
    """The first `minutes` minutes of the bundled incident trace, as a replay file."""
    text = (resources.files("scaler") / "data" / "incident-m5xlarge.csv").read_text()
    header, *rows = text.strip().splitlines()
    stamps = sorted({row.split(",", 1)[0] for row in rows})[100 : 100 + minutes]
    keep = set(stamps)
    path = tmp_path / "slice.csv"
    path.write_text("\n".join([header, *(r for r in rows if r.split(",", 1)[0] in keep)]) + "\n")
    return path


@pytest.mark.parametrize(
    ("minutes", "short_of"),
    [
        (1, ["backlog_growing", "cpu_bound", "ebs_burst_exhaustion", "memory_leak"]),
        (3, ["iowait_bound", "memory_pressure", "latency_growth"]),
        (10, ["memory_leak", "latency_growth"]),
    ],
)
def test_a_short_backtest_runs_and_names_what_needs_more_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], minutes: int, short_of: list[str]
) -> None:
    """Slices of the bundled trace: rules needing more data go under 'Not evaluated'."""
    path = _bundled_slice(tmp_path, minutes)
    assert main(["backtest", str(path), "--instance-type", "m5.xlarge"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Not evaluated" in out
    assert "no rule found the fleet in a named state" not in out
    for kind in short_of:
        assert f"{kind} needs at least" in out
        assert f"this window has {minutes}" in out
    if minutes == 10:
        assert "memory_leak needs at least 180 minutes of data" in out
        assert "latency_growth needs at least 120 minutes of data" in out
        assert "within tolerance" in out  # the capacity plan still ran (and held: 8.3 vs 8)


def test_a_header_only_replay_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replay with a header and no rows: exit 2 and one line, never 'Findings (0)'."""
    path = tmp_path / "empty.csv"
    path.write_text("timestamp,signal,value\n")
    assert main(["backtest", str(path)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert "Findings" not in captured.out
    assert captured.err.startswith(f"scaler: error: {path}: the replay holds no datapoints")


@pytest.mark.parametrize(
    ("window", "leak", "why"),
    [
        (trend_traces.level_shift(), False, "a deploy: 40% -> 58% at hour 4, then flat"),
        (trend_traces.level_shift(at_hour=8), False, "the same step late in the span"),
        (trend_traces.level_shift(at_hour=2, after=50), False, "a smaller, early step"),
        (trend_traces.leak(), True, "the control: a steady climb is still a leak"),
        (trend_traces.leak_with_restarts(), True, "a leak that restarts every 16 hours"),
    ],
)
def test_a_level_shift_is_not_a_leak_and_restarts_do_not_hide_one(
    window: Window, leak: bool, why: str
) -> None:
    """The leak fit needs the climb in both halves of its span, and skips restart drops."""
    findings = MemoryLeak().evaluate(window, CTX).findings
    assert bool(findings) is leak, why


def test_a_leak_with_restarts_is_one_finding_that_says_when_the_next_restart_is_due() -> None:
    """Measured on the climbing segments: the true slope, the restarts, what comes first."""
    findings = MemoryLeak().evaluate(trend_traces.leak_with_restarts(), CTX).findings
    assert len(findings) == 1 and findings[0].end is None
    ev = findings[0].evidence
    assert ev["slope_pct_per_hour"] == pytest.approx(1.0, rel=0.25)
    assert ev["restarts"] == 4
    assert ev["restart_period_hours"] == pytest.approx(16.0)
    assert ev["next_restart_due_at"] == "2026-03-05T16:00:00Z"
    assert "the next is due" in findings[0].summary


@given(
    st.lists(st.one_of(st.just(math.nan), st.floats(-50, 50, allow_nan=False)), max_size=25),
    st.integers(0, 20),
    st.integers(3, 40),
    st.integers(0, 12),
    st.booleans(),
)
def test_a_fit_is_the_same_whatever_empty_buckets_came_before(
    values: list[float], before: int, count: int, min_present: int, with_restarts: bool
) -> None:
    """Fits see only their own trailing buckets: empty buckets before the data change no fit
    (and rows wider than the data, narrowed to it, fit as the full rows do)."""
    buckets = np.array(values, dtype=np.float64)
    padded = np.concatenate((np.full(before, np.nan), buckets))
    segments = restarts(buckets, 3.0) if with_restarts else None
    padded_segments = (
        None
        if segments is None
        else np.concatenate((np.full(before, segments[0] if len(segments) else 0), segments))
    )
    alone = fit_buckets(buckets, count, min_present, segments)
    later = fit_buckets(padded, count, min_present, padded_segments)
    for name in ("slope", "intercept", "confidence", "first_x"):
        assert np.array_equal(getattr(alone, name), getattr(later, name)[before:], equal_nan=True)
