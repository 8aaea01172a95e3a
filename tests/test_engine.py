"""The engine end to end on arbitrary windows: advice within bounds, no scale-in on gaps."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scaler.backtest import Overrides, run_backtest
from scaler.policy import default_policy
from tests.helpers import window_of

SIGNALS = [
    "queue_visible",
    "queue_sent",
    "queue_deleted",
    "cpu_user",
    "cpu_iowait",
    "ebs_read_bytes",
]
values = arrays(np.float64, 60, elements=st.one_of(st.floats(0, 1e6), st.just(math.nan)))


@settings(max_examples=60, deadline=None)
@given(
    st.fixed_dictionaries(dict.fromkeys(SIGNALS, values)),
    st.integers(0, 60),
    st.integers(0, 10),
    st.integers(0, 30),
)
def test_recommendations_stay_within_bounds(
    series: dict[str, np.ndarray], instances: int, lo: int, span: int
) -> None:
    """For any data, every recommended capacity lies within [min, max]."""
    window = window_of({**series, "instances": instances}, length=60)
    advice = run_backtest(
        {"default": window},
        default_policy(),
        Overrides(instance_type="m5.xlarge", min_size=lo, max_size=lo + span + 1),
    )
    for rec in advice.recommendations:
        if rec.desired_capacity is not None:
            assert lo <= rec.desired_capacity <= lo + span + 1


@settings(max_examples=60, deadline=None)
@given(values, st.integers(1, 40))
def test_no_scale_in_advised_at_a_minute_with_missing_queue_data(
    visible: np.ndarray, instances: int
) -> None:
    """A recommendation below the current size never lands on a minute without queue data."""
    window = window_of(
        {
            "queue_visible": visible,
            "queue_sent": 0.0,
            "queue_deleted": 0.0,
            "instances": instances,
            "cpu_user": 1.0,
        },
        length=60,
    )
    advice = run_backtest(
        {"default": window}, default_policy(), Overrides(min_size=0, max_size=100)
    )
    for rec in advice.recommendations:
        i = int((rec.at - window.start).total_seconds() // 60)
        if rec.desired_capacity is not None and rec.desired_capacity < instances:
            assert not math.isnan(visible[i])
