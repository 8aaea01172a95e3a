"""The physical fleet model: EBS bucket arithmetic, the incident's calibration, determinism."""

from __future__ import annotations

import io
from importlib import resources

import numpy as np
import pytest

from scaler.instances.catalog import bundled_catalog
from scaler.sim import FleetModel, simulate
from scaler.sim.fleet import bucket_capacity_mb
from scaler.sim.replay_csv import write_replay
from scaler.sim.scenarios import INCIDENT_START, incident
from scaler.sources.replay import read_replay_text

M5_XLARGE = bundled_catalog().require("m5.xlarge")


def _steady(mb_s: float, minutes: int = 200) -> np.ndarray:
    """Per-minute byte balance (%) of one m5.xlarge reading `mb_s` MB/s from a full bucket."""
    model = FleetModel(instance=M5_XLARGE, mb_per_msg=1.0, cpu_s_per_msg=0.001, noise=0.0)
    trace = simulate(model, np.full(minutes, mb_s * 60), np.full(minutes, 1), start=INCIDENT_START)
    balance = trace.window.series["ebs_byte_balance"]
    return np.asarray(balance[~np.isnan(balance)])


def test_bucket_holds_thirty_minutes_above_baseline() -> None:
    """m5.xlarge: (593.75 - 143.75) MB/s x 1,800 s = 810,000 MB."""
    assert bucket_capacity_mb(M5_XLARGE) == pytest.approx(810_000)


def test_325_mb_s_from_a_full_bucket_runs_out_in_about_75_minutes() -> None:
    """810,000 MB / (325 - 143.75) MB/s = 74.5 minutes."""
    balance = _steady(325.0)
    empty_at = int(np.argmax(balance <= 0)) * 5
    assert 70 <= empty_at <= 80


def test_baseline_usage_never_drains_the_bucket() -> None:
    """At exactly the baseline, the bucket stays full."""
    assert (_steady(143.75) == 100).all()


def test_incident_is_calibrated_to_the_story() -> None:
    """Healthy ~20% CPU, a surge on burst, then throttled at the baseline with iowait ~50%."""
    trace = incident()
    w = trace.window
    assert trace.throttle_onset is not None
    onset = int((trace.throttle_onset - w.start).total_seconds() // 60)
    assert 190 <= onset <= 200  # surge at 120, +74.5 minutes of burst
    s = w.series
    healthy, surge, throttled = slice(60, 110), slice(140, 180), slice(onset + 10, onset + 60)
    per_instance_mb_s = (s["ebs_read_bytes"] + s["ebs_write_bytes"]) / 60e6
    assert np.mean(per_instance_mb_s[healthy]) == pytest.approx(133, rel=0.05)
    assert np.mean(per_instance_mb_s[surge]) == pytest.approx(325, rel=0.05)
    assert np.std(per_instance_mb_s[throttled]) < 0.01  # flat at the limit
    assert np.mean(per_instance_mb_s[throttled]) == pytest.approx(143.75, rel=0.01)
    assert np.mean(s["cpu_user"][healthy]) == pytest.approx(20, abs=3)
    assert np.mean(s["cpu_user"][surge]) < 60  # a 60% CPU target never fires
    assert np.mean(s["cpu_iowait"][throttled]) == pytest.approx(50, abs=5)
    assert np.mean(s["queue_deleted"][throttled]) / 8 == pytest.approx(215.6, rel=0.05)


def test_balance_metrics_come_every_fifth_minute() -> None:
    """EBS balance is 5-minute data, like AWS publishes it."""
    balance = incident().window.series["ebs_byte_balance"]
    present = np.flatnonzero(~np.isnan(balance))
    assert (present % 5 == 0).all()
    assert len(present) == len(balance) // 5


def test_same_seed_same_trace() -> None:
    """The model is deterministic."""
    a, b = incident().window, incident().window
    for name in a.series:
        np.testing.assert_array_equal(a.series[name], b.series[name])


def test_bundled_trace_is_what_the_model_prints() -> None:
    """src/scaler/data/incident-m5xlarge.csv is byte-identical to `make trace` output."""
    stream = io.StringIO()
    write_replay([incident().window], stream)
    bundled = (resources.files("scaler") / "data" / "incident-m5xlarge.csv").read_text()
    assert bundled == stream.getvalue()


def test_replay_round_trip_preserves_the_window() -> None:
    """Writing a window as replay CSV and reading it back gives the same numbers."""
    original = incident(90).window
    stream = io.StringIO()
    write_replay([original], stream)
    back = read_replay_text(stream.getvalue())["default"]
    assert back.start == original.start
    assert back.length == original.length
    for name, values in original.series.items():
        np.testing.assert_allclose(back.series[name], values, rtol=1e-9, equal_nan=True)
