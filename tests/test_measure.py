"""Demand measured from a window, and the volume-plateau test behind the gp3 option."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from scaler.instances.catalog import bundled_catalog
from scaler.instances.measure import demand_from_window, volume_plateau_mb_s
from scaler.signals import Window

M5_XLARGE = bundled_catalog().require("m5.xlarge")
START = datetime(2026, 3, 2, 8, tzinfo=UTC)


def _window(n: int = 20, **series: np.ndarray) -> Window:
    return Window(group="g", start=START, length=n, series=series)


def test_demand_from_the_incident_window() -> None:
    """10 instances deleting 1300/min at 325 MB/s each: 130 msg/min and 150 MB per message."""
    n = 20
    window = _window(
        n,
        queue_sent=np.full(n, 1500.0),
        queue_deleted=np.full(n, 1300.0),
        instances=np.full(n, 10.0),
        ebs_read_bytes=np.full(n, 200e6 * 60),
        ebs_write_bytes=np.full(n, 125e6 * 60),
        cpu_user=np.full(n, 16.6),
    )
    demand = demand_from_window(window, M5_XLARGE)
    assert demand is not None
    assert demand.arrivals_per_min == 1500
    assert demand.msgs_per_min == 130
    assert demand.mb_per_message == pytest.approx(150)
    assert demand.cpu_seconds_per_message == pytest.approx(0.166 * 4 * 60 / 130)
    assert demand.memory_gib_per_rate is None
    assert demand.volume_mb_s is None  # no InstanceEBSThroughputExceededCheck: no guess


def test_peak_is_what_the_work_drove_before_a_throttle() -> None:
    """A fleet held to 143.75 MB/s after bursting at 325 MB/s needs 325, not 143.75."""
    mb_s = np.r_[np.full(30, 325.0), np.full(30, 143.75)]
    n = len(mb_s)
    window = _window(
        n,
        queue_sent=np.full(n, 1500.0),
        queue_deleted=np.full(n, 1300.0),
        instances=np.full(n, 10.0),
        ebs_read_bytes=mb_s * 1e6 * 60,
    )
    demand = demand_from_window(window, M5_XLARGE)
    assert demand is not None
    assert demand.ebs_mb_s == pytest.approx(143.75)
    assert demand.peak_mb_s == pytest.approx(325)
    assert demand.needed_mb_s == pytest.approx(325)


def test_no_queue_data_no_demand() -> None:
    """Without deletions or instance counts there is nothing to size on."""
    assert demand_from_window(_window(5, cpu_user=np.full(5, 50.0)), M5_XLARGE) is None
    nan = np.full(5, np.nan)
    window = _window(5, queue_sent=nan, queue_deleted=nan, instances=nan)
    assert demand_from_window(window, M5_XLARGE) is None


def test_volume_plateau() -> None:
    """Flat 125 MB/s with no instance-limit breach is the volume; above, or breached, is not."""
    flat = np.full(15, 125e6 * 60)
    zero = np.zeros(15)
    assert volume_plateau_mb_s(
        _window(15, ebs_read_bytes=flat, ebs_throughput_exceeded=zero), M5_XLARGE
    ) == pytest.approx(125)
    breached = zero.copy()
    breached[3] = 1
    assert (
        volume_plateau_mb_s(
            _window(15, ebs_read_bytes=flat, ebs_throughput_exceeded=breached), M5_XLARGE
        )
        is None
    )
    at_baseline = np.full(15, 143.75e6 * 60)
    assert (
        volume_plateau_mb_s(
            _window(15, ebs_read_bytes=at_baseline, ebs_throughput_exceeded=zero), M5_XLARGE
        )
        is None
    )
    noisy = flat * np.linspace(0.5, 1.5, 15)
    assert (
        volume_plateau_mb_s(
            _window(15, ebs_read_bytes=noisy, ebs_throughput_exceeded=zero), M5_XLARGE
        )
        is None
    )
