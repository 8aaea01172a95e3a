"""The replay reader: SIGNALS.md's CSV format, and a clear error for every bad input."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


# -- checks on the whole file, the grid bound, windows cut out, Parquet, the fast path --------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("2026-03-02T08:00:00Z,queue_visible,-3\n", "line 2: signal 'queue_visible' is -3"),
        (
            "2026-03-02T08:00:00Z,cpu_user,5\n2026-03-02T08:01:00Z,instances,-1\n",
            "line 3: signal 'instances' is -1; a count cannot be negative",
        ),
        ("2026-03-02T08:00:00Z,queue_sent,-0.5\n", "line 2: signal 'queue_sent' is -0.5"),
    ],
)
def test_negative_counts_are_errors_naming_the_line(body: str, message: str) -> None:
    """A count below zero is a broken exporter: refused with the file and the line."""
    with pytest.raises(ReplayError, match=r"^trace\.csv: ") as err:
        read_replay_text(HEADER + body, "trace.csv")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("signal", "hint"),
    [
        ("cpu_usr", "did you mean 'cpu_user'?"),
        ("queue_visble", "did you mean 'queue_visible'?"),
        ("gc_pause_ms", None),
    ],
)
def test_unknown_signals_are_kept_with_a_warning_naming_the_closest(
    tmp_path: Path, signal: str, hint: str | None
) -> None:
    """An unknown signal is kept; the warning names the file and the closest known signal."""
    path = tmp_path / "t.csv"
    path.write_text(HEADER + f"2026-03-02T08:00:00Z,{signal},1\n")
    warnings: list[str] = []
    windows = read_replay(path, warn=warnings.append)
    assert windows["default"].has(signal)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path}: unknown signal {signal!r}")
    assert (hint in warnings[0]) if hint else ("did you mean" not in warnings[0])


def test_far_apart_datapoints_in_many_groups_are_refused_before_allocating() -> None:
    """200 groups whose two points lie 399 days apart: one clear error, not 15 GB and a crash."""
    rows = [
        f"2025-01-01T00:00:00Z,{signal},1,g{g}\n2026-02-04T00:00:00Z,{signal},1,g{g}\n"
        for g in range(200)
        for signal in ("cpu_user", "queue_visible", "instances")
    ]
    text = "timestamp,signal,value,group\n" + "".join(rows)
    with pytest.raises(ReplayError) as err:
        read_replay_text(text, "big.csv")
    message = str(err.value)
    assert message.startswith("big.csv: 200 group(s) from 2025-01-01T00:00:00Z to 2026-02-04")
    assert "399 days" in message and "--since and --until" in message


def test_since_and_until_cut_a_window_before_the_grid_is_built(tmp_path: Path) -> None:
    """--since (inclusive) and --until (exclusive) keep the minutes between them only."""
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER
        + "2025-01-01T00:00:00Z,cpu_user,1\n"
        + "".join(f"2026-03-02T08:{m:02d}:00Z,cpu_user,{m}\n" for m in range(10))
    )
    since = datetime(2026, 3, 2, 8, 2, tzinfo=UTC)
    until = datetime(2026, 3, 2, 8, 5, tzinfo=UTC)
    window = read_replay(path, since=since, until=until)["default"]
    assert window.start == since and window.length == 3
    assert list(window.series["cpu_user"]) == [2.0, 3.0, 4.0]
    with pytest.raises(ReplayError, match="no datapoints between 2027"):
        read_replay(path, since=datetime(2027, 1, 1, tzinfo=UTC))


def _parquet(path: Path, columns: dict[str, Any]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_reads_the_same_windows_as_csv(tmp_path: Path) -> None:
    """The bundled incident written as Parquet reads back to the same windows as its CSV."""
    import pyarrow as pa

    from scaler.cli.demo import incident_text

    text = incident_text()
    lines = text.splitlines()[1:]
    stamps = [datetime.fromisoformat(line.split(",")[0]) for line in lines]
    path = _parquet(
        tmp_path / "incident.parquet",
        {
            "timestamp": pa.array(stamps, type=pa.timestamp("s", tz="UTC")),
            "signal": pa.array([line.split(",")[1] for line in lines]).dictionary_encode(),
            "value": pa.array([float(line.split(",")[2]) for line in lines]),
        },
    )
    want = read_replay_text(text)["default"]
    got = read_replay(path)["default"]
    assert (got.start, got.length, sorted(got.series)) == (
        want.start,
        want.length,
        sorted(want.series),
    )
    for name, values in want.series.items():
        np.testing.assert_array_equal(got.series[name], values)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"timestamp": [datetime(2026, 3, 2, 8)], "signal": ["cpu_user"], "value": [1.0]},
            "column timestamp has no time zone",
        ),
        (
            {"timestamp": ["2026-03-02T08:00:00Z", "bad"], "signal": ["a", "b"], "value": [1, 2]},
            "row 2: bad timestamp 'bad'",
        ),
        (
            {"timestamp": ["2026-03-02T08:00:00Z"] * 2, "signal": ["a", None], "value": [1, 2]},
            "row 2: no signal",
        ),
        (
            {"timestamp": ["2026-03-02T08:00:00Z"], "signal": ["instances"], "value": [-2.0]},
            "row 1: signal 'instances' is -2",
        ),
        (
            {"timestamp": ["2026-03-02T08:00:00Z"], "sig": ["a"], "value": [1.0]},
            "unknown column 'sig'",
        ),
    ],
)
def test_bad_parquet_names_the_row(tmp_path: Path, columns: dict[str, Any], message: str) -> None:
    """Parquet has no lines: errors name the row (1 = the first datapoint)."""
    path = _parquet(tmp_path / "bad.parquet", columns)
    with pytest.raises(ReplayError, match=r"bad\.parquet: ") as err:
        read_replay(path)
    assert message in str(err.value)


_STAMP = st.integers(0, 90).map(lambda m: f"2026-03-02T{8 + m // 60:02d}:{m % 60:02d}:00Z")
_ROW = st.tuples(
    _STAMP | st.sampled_from(["2026-03-02T08:00:30+00:00", "2026-03-02 08:01:00Z", "x"]),
    st.sampled_from(["cpu_user", "queue_visible", " instances", "bad name", "gc"]),
    st.sampled_from(["1", "-1", "2.5", "NaN", "", "inf", " 3", "1e3"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ROW, max_size=12))
def test_fast_path_and_careful_reader_agree(rows: list[tuple[str, str, str]]) -> None:
    """Whatever the pyarrow path accepts, the careful reader reads the same; else same error."""
    from scaler.sources.replay import FastPathRefusedError, assemble
    from scaler.sources.replay_arrow import fast_csv_rows
    from scaler.sources.replay_careful import careful_rows

    data = (HEADER + "".join(f"{t},{s},{v}\n" for t, s, v in rows)).encode()
    try:
        careful: dict[str, Any] | str = assemble(careful_rows(data, "f"), "f")
    except ReplayError as exc:
        careful = str(exc)
    try:
        fast: dict[str, Any] | str = assemble(fast_csv_rows(data), "f")
    except FastPathRefusedError:
        return  # the careful reader answers for this input
    assert not isinstance(careful, str), careful
    assert isinstance(fast, dict)
    assert sorted(fast) == sorted(careful)
    for group, window in fast.items():
        other = careful[group]
        assert (window.start, window.length) == (other.start, other.length)
        assert sorted(window.series) == sorted(other.series)
        for name, values in window.series.items():
            np.testing.assert_array_equal(values, other.series[name])
