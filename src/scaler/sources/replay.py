"""Replay files (SIGNALS.md): long-format CSV -> one Window per group; bad rows fail loudly."""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np

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


def _rows(stream: IO[str], where: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(stream, strict=True)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise ReplayError(f"{where}: line {reader.line_num}: malformed CSV: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReplayError(
            f"{where}: line {reader.line_num + 1}: not UTF-8 text ({exc.reason})"
        ) from exc
    except ValueError as exc:  # e.g. NUL characters on some Python versions
        raise ReplayError(f"{where}: line {reader.line_num + 1}: {exc}") from exc


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


def _parse_value(text: str, where: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ReplayError(f"{where}: line {line}: value {text!r} is not a number") from None
    if math.isinf(value):
        raise ReplayError(f"{where}: line {line}: value {text!r} is infinite")
    return value


def _parse(stream: IO[str], where: str) -> dict[str, Window]:
    rows = _rows(stream, where)
    header = next((row for _, row in rows if row), None)
    if header is None:
        raise ReplayError(f"{where}: empty file; expected a header 'timestamp,signal,value'")
    cols = _Columns(header, where)
    minute_cache: dict[str, int] = {}
    minutes: dict[tuple[str, str], list[int]] = defaultdict(list)
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    lines: dict[tuple[str, str], list[int]] = defaultdict(list)

    for line, row in rows:
        if not row:
            continue
        if len(row) != cols.width:
            raise ReplayError(
                f"{where}: line {line}: expected {cols.width} fields, got {len(row)}: {row!r}"
            )
        stamp = row[cols.timestamp]
        minute = minute_cache.get(stamp)
        if minute is None:
            minute = minute_cache[stamp] = _parse_minute(stamp, where, line)
        signal = row[cols.signal].strip()
        if not _NAME.match(signal):
            raise ReplayError(f"{where}: line {line}: bad signal name {signal!r}")
        group = DEFAULT_GROUP if cols.group is None else row[cols.group].strip()
        if not group:
            raise ReplayError(
                f"{where}: line {line}: empty group; name the group or drop the column"
            )
        value = _parse_value(row[cols.value], where, line)
        key = (group, signal)
        lines[key].append(line)
        minutes[key].append(minute)
        values[key].append(value)

    return _build_windows(minutes, values, where, lines)


def _build_windows(
    minutes: dict[tuple[str, str], list[int]],
    values: dict[tuple[str, str], list[float]],
    where: str,
    lines: dict[tuple[str, str], list[int]],
) -> dict[str, Window]:
    by_group: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key in minutes:
        by_group[key[0]].append(key)
    windows: dict[str, Window] = {}
    for group, keys in sorted(by_group.items()):
        stamps = {k: np.asarray(minutes[k], dtype=np.int64) for k in keys}
        lo = min(int(s.min()) for s in stamps.values())
        hi = max(int(s.max()) for s in stamps.values())
        if hi - lo + 1 > MAX_SPAN_MINUTES:
            raise ReplayError(
                f"{where}: group {group!r} spans {(hi - lo) / 1440:.0f} days "
                f"({_iso(lo)} to {_iso(hi)}); more than {MAX_SPAN_MINUTES // 1440} days is refused "
                "- check for a mistyped year"
            )
        series = {}
        for key, stamp in stamps.items():
            order = np.argsort(stamp, kind="stable")
            sorted_stamps = stamp[order]
            dupes = np.flatnonzero(np.diff(sorted_stamps) == 0)
            if len(dupes):
                minute = int(sorted_stamps[dupes[0]])
                both = sorted(lines[key][i] for i in order[dupes[0] : dupes[0] + 2])
                raise ReplayError(
                    f"{where}: line {both[1]}: a second datapoint for signal {key[1]!r} in "
                    f"group {group!r} at {_iso(minute)} (line {both[0]} has the first); "
                    "one value per signal per minute"
                )
            grid = np.full(hi - lo + 1, np.nan)
            grid[stamp - lo] = np.asarray(values[key], dtype=np.float64)
            series[key[1]] = grid
        windows[group] = Window(
            group=group,
            start=datetime.fromtimestamp(lo * MINUTE, UTC),
            length=hi - lo + 1,
            series=series,
        )
    return windows


def _iso(minute: int) -> str:
    return datetime.fromtimestamp(minute * MINUTE, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
