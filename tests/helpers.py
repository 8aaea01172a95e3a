"""Small builders shared by tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np

from scaler.aws import RetryPolicy
from scaler.policy import LiveSettings
from scaler.signals import Window
from scaler.sim.fleet import Trace

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
#: Retries that give up in milliseconds, for calls a test makes fail on purpose.
FAST_RETRY = RetryPolicy(
    max_attempts=3, max_total_s=1, initial_backoff_s=0.001, max_backoff_s=0.002
)


def window_of(
    series: Mapping[str, Sequence[float] | np.ndarray | float],
    length: int | None = None,
    group: str = "default",
) -> Window:
    """A window from arrays (or constants broadcast to `length`)."""
    n = length or max(len(v) for v in series.values() if not isinstance(v, int | float))
    data = {
        k: np.full(n, float(v)) if isinstance(v, int | float) else np.asarray(v, float)
        for k, v in series.items()
    }
    return Window(group=group, start=START, length=n, series=data)


def seeded_window(trace: Trace, tick: datetime, group: str) -> Window:
    """The trace's minutes before `tick` that a live tick reads (its window, plus ten): seeding
    more only makes the local AWS slower to answer."""
    minutes = int((tick - trace.window.start).total_seconds() // 60) - 1
    keep = LiveSettings().window_minutes + 10
    head = trace.window.head(minutes)
    return head.tail(min(keep, head.length)).model_copy(update={"group": group})
