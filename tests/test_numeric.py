"""Causal series helpers: the arithmetic every detector leans on."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.numeric import (
    ffill,
    rolling_max,
    rolling_mean,
    rolling_median,
    rolling_sum,
    run_lengths,
    runs,
    sustained,
)
from scaler.rules.backlog import minutes_until_age_limit
from scaler.rules.features import held
from scaler.signals import Window

nan = np.nan


def test_rolling_helpers_ignore_missing_values() -> None:
    """Means, medians and maxima skip NaN and are NaN only when the whole window is missing."""
    x = np.array([1.0, nan, 3.0, 4.0, nan, nan])
    np.testing.assert_allclose(rolling_mean(x, 2), [1, 1, 3, 3.5, 4, nan])
    np.testing.assert_allclose(rolling_median(x, 3), [1, 1, 2, 3.5, 3.5, 4])
    np.testing.assert_allclose(rolling_max(x, 2), [1, 1, 3, 4, 4, nan])


def test_ffill_carries_values_a_limited_number_of_minutes() -> None:
    """A 5-minute metric is carried forward, but not past its limit."""
    np.testing.assert_allclose(ffill(np.array([5.0, nan, nan, nan, 7.0]), 2), [5, 5, 5, nan, 7])


def test_runs_and_sustained_agree() -> None:
    """Runs of at least k, and the minutes confirmed after k minutes, mark the same spans."""
    mask = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1], dtype=bool)
    assert run_lengths(mask).tolist() == [1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]
    assert runs(mask, 3) == [(3, 5), (7, 10)]
    assert np.flatnonzero(sustained(mask, 3)).tolist() == [5, 9, 10]


def test_held_bridges_a_short_unknown_gap_but_not_a_false() -> None:
    """Unknown minutes keep the state for a while; a known False ends it."""
    cond = np.array([1, 1, 1, 0, 0, 1, 1, 0, 1], dtype=bool)
    known = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1], dtype=bool)
    assert held(cond, known, 3, bridge=2).astype(int).tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]


@given(st.lists(st.booleans(), max_size=80), st.integers(1, 10))
def test_sustained_is_causal(bits: list[bool], k: int) -> None:
    """Cutting the series never changes an earlier minute's verdict."""
    mask = np.array(bits, dtype=bool)
    full = sustained(mask, k)
    for cut in range(len(bits)):
        assert (sustained(mask[:cut], k) == full[:cut]).all()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # Age 300 s growing 30 s/min: (900 - 300) / 30 = 20 minutes.
        ({"oldest_age_s": 300, "age_slope_s_per_min": 30}, (20.0, "oldest_age_trend")),
        ({"oldest_age_s": 1000, "age_slope_s_per_min": 30}, (0.0, "oldest_age_already_past")),
        # No age signal: wait = 3000 / 1000 * 60 = 180 s; limit at 15,000 queued, +600/min: 20 min.
        (
            {"backlog": 3000, "throughput_per_min": 1000, "growth_per_min": 600},
            (20.0, "queue_wait_growth"),
        ),
        (
            {"backlog": 30000, "throughput_per_min": 1000, "growth_per_min": 600},
            (0.0, "queue_wait_already_past"),
        ),
        ({}, (None, "unknown")),
    ],
)
def test_minutes_until_age_limit(
    kwargs: dict[str, float], expected: tuple[float | None, str]
) -> None:
    """The age projection uses the age trend when it has one, else the queue's wait time."""
    args: dict[str, float | None] = {
        "oldest_age_s": None,
        "age_slope_s_per_min": None,
        "backlog": None,
        "throughput_per_min": None,
        "growth_per_min": None,
    }
    args.update(kwargs)
    assert minutes_until_age_limit(limit_s=900, **args) == expected


_SERIES = st.lists(
    st.one_of(st.just(math.nan), st.floats(-1e6, 1e6, allow_nan=False)), max_size=60
).map(lambda xs: np.array(xs, dtype=np.float64))


@given(_SERIES, st.integers(0, 70), st.integers(1, 5))
def test_rolling_sum_is_the_sum_of_each_trailing_span(
    values: np.ndarray, width: int, min_count: int
) -> None:
    """Exactly (bit for bit) what summing each span's present values in turn gives."""
    sums, counts = rolling_sum(values, width, min_count)
    running = np.concatenate(([0.0], np.cumsum(np.nan_to_num(values))))
    for i in range(len(values)):
        span = values[max(i + 1 - width, 0) : i + 1]
        present = int((~np.isnan(span)).sum())
        assert counts[i] == present
        want = running[i + 1] - running[max(i + 1 - width, 0)] if present >= min_count else None
        assert math.isnan(sums[i]) if want is None else sums[i] == want, (i, sums[i], want)


@given(_SERIES, st.integers(0, 8))
def test_ffill_carries_the_last_value_at_most_limit_minutes(values: np.ndarray, limit: int) -> None:
    filled = ffill(values, limit)
    for i, v in enumerate(values):
        back = [j for j in range(max(i - limit, 0), i + 1) if not math.isnan(values[j])]
        want = values[back[-1]] if back else math.nan
        assert (math.isnan(filled[i]) and math.isnan(want)) or filled[i] == want, (i, v)


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 6))
def test_runs_are_the_true_stretches(bits: list[bool], min_length: int) -> None:
    found = runs(np.array(bits, dtype=bool), min_length)
    want, start = [], None
    for i, bit in enumerate([*bits, False]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            if i - start >= min_length:
                want.append((start, i - 1))
            start = None
    assert found == want


def test_a_window_copied_with_other_series_derives_its_own() -> None:
    """A copy must not answer from what was derived from the original's series."""
    window = Window(
        group="g",
        start=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        length=3,
        series={"ebs_read_bytes": np.array([1.0, 2.0, 3.0])},
    )
    assert window.total(["ebs_read_bytes"]) is not None
    zeroed = window.model_copy(update={"series": {"ebs_read_bytes": np.zeros(3)}})
    assert zeroed.total(["ebs_read_bytes"]).tolist() == [0.0, 0.0, 0.0]  # type: ignore[union-attr]
    assert window.filled("ebs_read_bytes", 1).tolist() == [1.0, 2.0, 3.0]  # type: ignore[union-attr]


@given(_SERIES, st.integers(1, 6))
def test_rolling_median_is_each_trailing_span_median_ignoring_missing(
    values: np.ndarray, width: int
) -> None:
    """Bit for bit numpy's nanmedian of each trailing span (the 3-minute default has its own
    path: the middle of three, the mean of two)."""
    got = rolling_median(values, width)
    for i in range(len(values)):
        span = values[max(i + 1 - width, 0) : i + 1]
        present = span[~np.isnan(span)]
        want = float(np.median(present)) if len(present) else math.nan
        assert (math.isnan(got[i]) and math.isnan(want)) or got[i] == want, (i, span)
