"""Replay files (SIGNALS.md): long-format CSV -> one Window per group; bad rows fail loudly."""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from scaler.errors import ReplayError
from scaler.signals import MINUTE, Window

__all__ = ["DEFAULT_GROUP", "MAX_SPAN_MINUTES", "read_replay", "read_replay_text"]

DEFAULT_GROUP = "default"
REQUIRED_COLUMNS = ("timestamp", "signal", "value")
OPTIONAL_COLUMNS = ("group",)
#: A replay longer than this is almost certainly a typo in a year; refuse it rather than
#: allocate a grid for decades.
MAX_SPAN_MINUTES = 400 * 24 * 60
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")


def read_replay(path: str | Path) -> dict[str, Window]:
    """Read a replay file into windows by group; any bad row is a ReplayError naming its line."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            return _parse(stream, str(path))
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read replay file: {exc.strerror or exc}") from exc


def read_replay_text(text: str, where: str = "<replay>") -> dict[str, Window]:
    """Read replay CSV from a string (tests, stdin); `where` names it in errors."""
    import io

    return _parse(io.StringIO(text, newline=""), where)


class _Columns:
    def __init__(self, header: list[str], where: str) -> None:
        names = [h.strip() for h in header]
        unknown = [n for n in names if n not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if unknown:
            valid = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
            raise ReplayError(
                f"{where}: line 1: unknown column {unknown[0]!r}; valid columns: {valid}"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise ReplayError(
                f"{where}: line 1: header lacks column(s) {', '.join(missing)}; "
                f"a replay file starts with 'timestamp,signal,value[,group]'"
            )
        if len(set(names)) != len(names):
            raise ReplayError(f"{where}: line 1: a column is named twice in {names}")
        self.width = len(names)
        self.timestamp = names.index("timestamp")
        self.signal = names.index("signal")
        self.value = names.index("value")
        self.group = names.index("group") if "group" in names else None


def _parse_minute(text: str, where: str, line: int) -> int:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReplayError(
            f"{where}: line {line}: bad timestamp {text!r}; write ISO 8601 in UTC, "
            "e.g. 2026-03-02T08:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise ReplayError(
            f"{where}: line {line}: timestamp {text!r} has no time zone; "
            "write it in UTC with a trailing Z"
        )
    return int(when.timestamp()) // MINUTE


def _checked_name(raw: str, what: str, where: str, line: int) -> str:
    name = raw.strip()
    if not _NAME.match(name):
        raise ReplayError(f"{where}: line {line}: bad {what} name {raw!r}")
    return name


def _parse(stream: IO[str], where: str) -> dict[str, Window]:
    reader = csv.reader(stream, strict=True)
    try:
        return _parse_rows(reader, where)
    except csv.Error as exc:
        raise ReplayError(f"{where}: line {reader.line_num}: malformed CSV: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReplayError(
            f"{where}: line {reader.line_num + 1}: not UTF-8 text ({exc.reason})"
        ) from exc


def _parse_rows(reader: Any, where: str) -> dict[str, Window]:
    header = next((row for row in reader if row), None)
    if header is None:
        raise ReplayError(f"{where}: empty file; expected a header 'timestamp,signal,value'")
    cols = _Columns(header, where)
    width, t_col, s_col, v_col, g_col = (
        cols.width,
        cols.timestamp,
        cols.signal,
        cols.value,
        cols.group,
    )
    # Hot loop over every row: caches and local names keep a 30-day file well under a second.
    minute_of: dict[str, int] = {}
    signal_of: dict[str, str] = {}
    group_of: dict[str, str] = {DEFAULT_GROUP: DEFAULT_GROUP}
    series: dict[tuple[str, str], tuple[list[int], list[float], list[int]]] = {}
    isinf = math.isinf
    for row in reader:
        if len(row) != width:
            if not row:
                continue
            raise ReplayError(
                f"{where}: line {reader.line_num}: expected {width} fields, got {len(row)}: {row!r}"
            )
        stamp = row[t_col]
        minute = minute_of.get(stamp)
        if minute is None:
            minute = minute_of[stamp] = _parse_minute(stamp, where, reader.line_num)
        raw_signal = row[s_col]
        signal = signal_of.get(raw_signal)
        if signal is None:
            signal = signal_of[raw_signal] = _checked_name(
                raw_signal, "signal", where, reader.line_num
            )
        raw_group = DEFAULT_GROUP if g_col is None else row[g_col]
        group = group_of.get(raw_group)
        if group is None:
            group = group_of[raw_group] = _checked_name(raw_group, "group", where, reader.line_num)
        try:
            value = float(row[v_col])
        except ValueError:
            raise ReplayError(
                f"{where}: line {reader.line_num}: value {row[v_col]!r} is not a number"
            ) from None
        if isinf(value):
            raise ReplayError(f"{where}: line {reader.line_num}: value {row[v_col]!r} is infinite")
        entry = series.get((group, signal))
        if entry is None:
            entry = series[(group, signal)] = ([], [], [])
        entry[0].append(minute)
        entry[1].append(value)
        entry[2].append(reader.line_num)
    return _build_windows(series, where)


def _build_windows(
    series: dict[tuple[str, str], tuple[list[int], list[float], list[int]]], where: str
) -> dict[str, Window]:
    by_group: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key in series:
        by_group[key[0]].append(key)
    windows: dict[str, Window] = {}
    for group, keys in sorted(by_group.items()):
        stamps = {k: np.asarray(series[k][0], dtype=np.int64) for k in keys}
        lo = min(int(s.min()) for s in stamps.values())
        hi = max(int(s.max()) for s in stamps.values())
        if hi - lo + 1 > MAX_SPAN_MINUTES:
            raise ReplayError(
                f"{where}: group {group!r} spans {(hi - lo) / 1440:.0f} days "
                f"({_iso(lo)} to {_iso(hi)}); more than {MAX_SPAN_MINUTES // 1440} days is refused "
                "- check for a mistyped year"
            )
        grids = {}
        for key, stamp in stamps.items():
            _refuse_duplicates(stamp, series[key][2], key, where)
            grid = np.full(hi - lo + 1, np.nan)
            grid[stamp - lo] = np.asarray(series[key][1], dtype=np.float64)
            grids[key[1]] = grid
        windows[group] = Window(
            group=group,
            start=datetime.fromtimestamp(lo * MINUTE, UTC),
            length=hi - lo + 1,
            series=grids,
        )
    return windows


def _refuse_duplicates(
    stamp: NDArray[np.int64], lines: list[int], key: tuple[str, str], where: str
) -> None:
    order = np.argsort(stamp, kind="stable")
    dupes = np.flatnonzero(np.diff(stamp[order]) == 0)
    if len(dupes):
        minute = int(stamp[order][dupes[0]])
        first, second = sorted(lines[i] for i in order[dupes[0] : dupes[0] + 2])
        raise ReplayError(
            f"{where}: line {second}: a second datapoint for signal {key[1]!r} in group "
            f"{key[0]!r} at {_iso(minute)} (line {first} has the first); "
            "one value per signal per minute"
        )


def _iso(minute: int) -> str:
    return datetime.fromtimestamp(minute * MINUTE, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
