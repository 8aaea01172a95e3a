"""The EBS burst bucket model against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.instances.burst import Bucket, bytes_per_min_to_mb_s, ops_per_min_to_iops
from scaler.instances.catalog import bundled_catalog

M5_XLARGE = bundled_catalog().require("m5.xlarge")
BUCKET = Bucket.throughput(M5_XLARGE)
FULL_AT_325 = 810_000 / (325 - 143.75) / 60  # 74.48 minutes, worked by hand


BIG = Bucket.throughput(bundled_catalog().require("m5.4xlarge"))
IOPS = Bucket.iops(M5_XLARGE)


@pytest.mark.parametrize(
    ("bucket", "capacity"),
    [
        pytest.param(BUCKET, 810_000, id="(593.75 - 143.75) MB/s for 1800 s is 810,000 MB"),
        pytest.param(IOPS, 22_950_000, id="m5.xlarge IOPS: (18,750 - 6,000) x 1800 operations"),
        pytest.param(BIG, 0, id="m5.4xlarge sustains 593.75 MB/s: no bucket"),
    ],
)
def test_bucket_capacity(bucket: Bucket, capacity: float) -> None:
    """What a full bucket holds, worked by hand; a type without burst has none."""
    assert bucket.capacity == pytest.approx(capacity)
    assert bucket.bursts is (capacity > 0)


# One row per case: the bucket, usage per instance, the balance left (1 is full), the minutes
# until it is empty (inf: never), and the rule the row shows.
EMPTY_CASES = [
    (BUCKET, 593.75, 1.0, 30.0, "810,000 MB lasts 30 minutes at the 593.75 MB/s maximum"),
    (BUCKET, 325.0, 1.0, FULL_AT_325, "810,000 MB / 181.25 MB/s = 4,469 s: about 74.5 minutes"),
    (BUCKET, 143.75, 1.0, math.inf, "usage at the baseline draws nothing from the bucket"),
    (BUCKET, 100.0, 1.0, math.inf, "usage below the baseline draws nothing either"),
    (BUCKET, 0.0, 1.0, math.inf, "no usage, no draw"),
    (BUCKET, 325.0, 0.5, FULL_AT_325 / 2, "half a bucket lasts half as long"),
    (BUCKET, 2000.0, 1.0, 30.0, "usage is capped at the maximum the type can reach"),
    (BUCKET, 325.0, 0.0, 0.0, "an empty bucket is empty now"),
    (BIG, 593.75, 1.0, math.inf, "a type without burst never runs out"),
    (IOPS, 18_750, 1.0, 30.0, "30 minutes at the 18,750 IOPS maximum"),
    (IOPS, 9_000, 1.0, 22_950_000 / 3_000 / 60, "3,000 IOPS above the 6,000 baseline"),
]


@pytest.mark.parametrize(
    ("bucket", "usage", "balance", "minutes", "rule"), EMPTY_CASES, ids=[c[-1] for c in EMPTY_CASES]
)
def test_minutes_to_empty(
    bucket: Bucket, usage: float, balance: float, minutes: float, rule: str
) -> None:
    """Each row: minutes until the bucket is empty at a steady usage."""
    assert bucket.minutes_to_empty(usage, balance=balance) == pytest.approx(minutes), rule


def test_full_bucket_at_325_mb_s_runs_out_in_about_75_minutes() -> None:
    """The hand-worked figure the rule and the README use: between 74 and 75 minutes."""
    assert 74 < BUCKET.minutes_to_empty(325.0) < 75


@pytest.mark.parametrize(
    ("usage", "sustained"),
    [
        pytest.param(325.0, 143.75, id="above the baseline: the baseline"),
        pytest.param(100.0, 100.0, id="below it: the usage"),
    ],
)
def test_sustained_rate_after_exhaustion(usage: float, sustained: float) -> None:
    """Once empty, an instance sustains its baseline (or its usage, if lower)."""
    assert BUCKET.sustained_after(usage) == sustained


@pytest.mark.parametrize(
    ("usage", "balance", "minutes"),
    [
        pytest.param(100.0, 0.0, 810_000 / 43.75 / 60, id="empty at 100 MB/s: 43.75 MB/s refill"),
        pytest.param(100.0, 1.0, 0.0, id="a full bucket needs no refill"),
        pytest.param(143.75, 0.5, math.inf, id="at the baseline nothing refills"),
    ],
)
def test_refill_time(usage: float, balance: float, minutes: float) -> None:
    """Minutes until the bucket is full again at a steady usage."""
    assert BUCKET.minutes_to_refill(usage, balance=balance) == pytest.approx(minutes)


def test_a_type_without_burst_reads_full_where_usage_is_known() -> None:
    """m5.4xlarge: its balance reads full, and a minute without usage stays unknown."""
    balance = BIG.estimate_balance(np.array([500.0, np.nan]))
    assert balance[0] == 1.0
    assert np.isnan(balance[1])


def test_unit_conversions() -> None:
    """The signals' per-minute units convert to AWS's per-second units."""
    assert bytes_per_min_to_mb_s(np.array([325e6 * 60]))[0] == pytest.approx(325.0)
    assert ops_per_min_to_iops(np.array([6000 * 60.0]))[0] == pytest.approx(6000.0)


def test_estimated_balance_from_a_full_bucket() -> None:
    """Steady 325 MB/s empties the bucket during minute 74, then it stays empty, then refills."""
    usage = np.concatenate([np.full(90, 325.0), np.full(30, 0.0)])
    balance = BUCKET.estimate_balance(usage)
    drained = (np.arange(1, 91) * 60 * 181.25) / 810_000
    assert balance[:74] == pytest.approx(1 - drained[:74])
    assert balance[73] > 0
    assert balance[74] == 0.0
    assert balance[89] == 0.0
    refill_per_min = 143.75 * 60 / 810_000
    assert balance[119] == pytest.approx(30 * refill_per_min)


def test_measured_balance_anchors_the_estimate() -> None:
    """A 5-minute EBSByteBalance% datapoint resets the estimate; usage moves it in between."""
    usage = np.full(12, 325.0)
    measured = np.full(12, np.nan)
    measured[5] = 40.0
    measured[10] = 30.0
    balance = BUCKET.estimate_balance(usage, measured)
    step = 60 * 181.25 / 810_000
    assert balance[5] == pytest.approx(0.40)
    assert balance[6] == pytest.approx(0.40 - step)
    assert balance[9] == pytest.approx(0.40 - 4 * step)
    assert balance[10] == pytest.approx(0.30)
    assert balance[11] == pytest.approx(0.30 - step)
    minutes = BUCKET.minutes_to_empty_series(usage, balance)
    assert minutes[5] == pytest.approx(0.4 * FULL_AT_325)


def test_missing_usage_holds_the_estimate() -> None:
    """A minute without data is not idle: the estimate does not refill through it."""
    usage = np.array([325.0, np.nan, np.nan, 325.0])
    balance = BUCKET.estimate_balance(usage)
    assert balance[1] == balance[2] == balance[0]
    minutes = BUCKET.minutes_to_empty_series(usage, balance)
    assert np.isnan(minutes[1])


@given(
    st.lists(st.one_of(st.floats(0, 2000), st.just(float("nan"))), min_size=1, max_size=200),
    st.floats(0, 1),
)
def test_balance_stays_within_the_bucket(usage: list[float], start: float) -> None:
    """Whatever the usage, the estimated fill stays between empty and full."""
    balance = BUCKET.estimate_balance(np.array(usage), start=start)
    assert ((balance >= 0) & (balance <= 1)).all()


@given(st.floats(144, 593), st.floats(144, 593), st.floats(0.01, 1))
def test_more_usage_empties_sooner(low: float, high: float, balance: float) -> None:
    """Above the baseline, higher usage never gives more minutes; a fuller bucket never fewer."""
    low, high = sorted((low, high))
    assert BUCKET.minutes_to_empty(high, balance) <= BUCKET.minutes_to_empty(low, balance)
    assert BUCKET.minutes_to_empty(low, balance) <= BUCKET.minutes_to_empty(low, 1.0)
