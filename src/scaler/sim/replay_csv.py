"""Write windows as replay CSV (SIGNALS.md): long format, UTC, missing datapoints omitted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TextIO

import numpy as np

from scaler.signals import Window

__all__ = ["write_replay"]


def write_replay(
    windows: Sequence[Window], stream: TextIO, *, with_group: bool | None = None
) -> int:
    """Write rows ordered by time then signal; returns the number of datapoints written."""
    grouped = len(windows) > 1 if with_group is None else with_group
    stream.write("timestamp,signal,value,group\n" if grouped else "timestamp,signal,value\n")
    count = 0
    for window in windows:
        names = sorted(window.series)
        for i in range(window.length):
            stamp = (window.start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for name in names:
                value = window.series[name][i]
                if np.isnan(value):
                    continue
                text = f"{value:.10g}"
                stream.write(
                    f"{stamp},{name},{text},{window.group}\n"
                    if grouped
                    else f"{stamp},{name},{text}\n"
                )
                count += 1
    return count
