"""The replay reader: SIGNALS.md's CSV format, and a clear error for every bad input."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.errors import ReplayError
from scaler.sources.replay import read_replay, read_replay_text

HEADER = "timestamp,signal,value\n"


def test_unsorted_rows_gaps_and_nan_land_on_their_minutes() -> None:
    """Rows in any order fill a minute grid; NaN and absent minutes are missing, not zero."""
    text = HEADER + (
        "2026-03-02T08:03:00Z,queue_visible,30\n"
        "2026-03-02T08:00:00Z,queue_visible,0\n"
        "2026-03-02T08:01:00Z,queue_visible,NaN\n"
    )
    window = read_replay_text(text)["default"]
    assert window.length == 4
    values = window.get("queue_visible")
    assert values is not None
    assert values[0] == 0 and values[3] == 30
    assert math.isnan(values[1]) and math.isnan(values[2])


def test_five_minute_signals_sit_beside_one_minute_signals() -> None:
    """A 5-minute balance metric shares the grid with 1-minute data, NaN in between."""
    rows = [f"2026-03-02T08:{m:02d}:00Z,cpu_user,{10 + m}" for m in range(10)]
    rows += [f"2026-03-02T08:{m:02d}:00Z,ebs_byte_balance,{100 - m}" for m in (0, 5)]
    window = read_replay_text(HEADER + "\n".join(rows) + "\n")["default"]
    balance = window.get("ebs_byte_balance")
    assert balance is not None
    assert balance[0] == 100 and balance[5] == 95
    assert np.isnan(balance[[1, 2, 3, 4, 6, 7, 8, 9]]).all()


def test_group_column_splits_windows_and_unknown_signals_are_kept() -> None:
    """A fourth `group` column makes one window per group; unknown signal names are kept."""
    text = (
        "timestamp,signal,value,group\n"
        "2026-03-02T08:00:00Z,queue_visible,1,a\n"
        "2026-03-02T08:00:00Z,queue_visible,2,b\n"
        "2026-03-02T08:01:00Z,gc_pause_ms,40,b\n"
    )
    windows = read_replay_text(text)
    assert sorted(windows) == ["a", "b"]
    assert windows["b"].has("gc_pause_ms")
    assert windows["a"].length == 1


def test_offset_timestamps_are_converted_to_utc() -> None:
    """An explicit +02:00 offset is unambiguous and lands on the UTC minute."""
    window = read_replay_text(HEADER + "2026-03-02T10:00:00+02:00,cpu_user,5\n")["default"]
    assert window.start.isoformat() == "2026-03-02T08:00:00+00:00"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("2026-13-02T08:00:00Z,cpu_user,1\n", "line 2: bad timestamp '2026-13-02T08:00:00Z'"),
        (
            "2026-03-02T08:00:00,cpu_user,1\n",
            "line 2: timestamp '2026-03-02T08:00:00' has no time zone",
        ),
        ("2026-03-02T08:00:00Z,cpu_user,lots\n", "line 2: value 'lots' is not a number"),
        ("2026-03-02T08:00:00Z,cpu_user,inf\n", "line 2: value 'inf' is infinite"),
        ("2026-03-02T08:00:00Z,cpu_user\n", "line 2: expected 3 fields, got 2"),
        ("2026-03-02T08:00:00Z,,1\n", "line 2: bad signal name ''"),
        (
            "2026-03-02T08:00:00Z,cpu_user,1\n2026-03-02T08:00:20Z,cpu_user,2\n",
            "line 3: a second datapoint for signal 'cpu_user'",
        ),
        (
            "2026-03-02T08:00:00Z,cpu_user,1\n1996-03-02T08:00:00Z,cpu_user,2\n",
            "check for a mistyped year",
        ),
    ],
)
def test_bad_rows_name_the_file_line_and_problem(body: str, message: str) -> None:
    """Each kind of bad row is refused with a message that names where and what."""
    with pytest.raises(ReplayError, match=r"^trace\.csv: ") as err:
        read_replay_text(HEADER + body, "trace.csv")
    assert message in str(err.value)


def test_unknown_column_is_refused_with_the_valid_columns() -> None:
    """A header with a column the format does not define lists the valid ones."""
    with pytest.raises(
        ReplayError, match=r"line 1: unknown column 'host'; valid columns: timestamp"
    ):
        read_replay_text("timestamp,signal,value,host\n")


def test_missing_column_and_empty_file_are_refused() -> None:
    """A header without `value`, or no header at all, is an error, not an empty window."""
    with pytest.raises(ReplayError, match="header lacks column"):
        read_replay_text("timestamp,signal\n")
    with pytest.raises(ReplayError, match="empty file"):
        read_replay_text("")


def test_unreadable_and_binary_files_are_refused(tmp_path: Path) -> None:
    """A missing path and a file that is not UTF-8 text both give a ReplayError."""
    with pytest.raises(ReplayError, match="cannot read replay file"):
        read_replay(tmp_path / "nope.csv")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(HEADER.encode() + b"\xff\xfe\x00garbage\n")
    with pytest.raises(ReplayError, match=r"bin.csv: line \d+: "):
        read_replay(binary)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_reader_never_crashes_on_arbitrary_text(body: str) -> None:
    """Any text after a valid header either parses or raises ReplayError, nothing else."""
    try:
        windows = read_replay_text(HEADER + body)
    except ReplayError:
        return
    for window in windows.values():
        assert all(len(v) == window.length for v in window.series.values())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_reader_never_crashes_on_arbitrary_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    """Any bytes on disk either parse or raise ReplayError."""
    path = tmp_path_factory.mktemp("fuzz") / "f.csv"
    path.write_bytes(data)
    with contextlib.suppress(ReplayError):
        read_replay(path)
