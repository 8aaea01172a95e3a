"""The careful replay CSV reader: row by row, so the first bad row is named by its line.

Called by `scaler.sources.replay` when the fast pyarrow path finds anything odd (and by the
tests that check both agree). Slower than the fast path, and only as slow as a bad file needs.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from scaler.errors import ReplayError
from scaler.sources.replay import (
    DEFAULT_GROUP,
    Rows,
    check_columns,
    checked_name,
    parse_minute,
)

__all__ = ["careful_rows"]


def careful_rows(data: bytes, where: str) -> Rows:
    """A CSV file's rows, row by row; the first bad one is a ReplayError naming its line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ReplayError(f"{where}: line {line}: not UTF-8 text ({exc.reason})") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        return _parse(reader, where)
    except csv.Error as exc:
        raise ReplayError(f"{where}: line {reader.line_num}: malformed CSV: {exc}") from exc


def _parse(reader: Any, where: str) -> Rows:
    header = next((row for row in reader if row), None)
    if header is None:
        raise ReplayError(f"{where}: empty file; expected a header 'timestamp,signal,value'")
    names = check_columns(header, where)
    width, t_col, s_col, v_col = (
        len(names),
        names.index("timestamp"),
        names.index("signal"),
        names.index("value"),
    )
    g_col = names.index("group") if "group" in names else None
    minute_of: dict[str, int] = {}
    # raw text -> code, and name -> code: " cpu_user" and "cpu_user" are one signal.
    code_of: dict[str, dict[str, int]] = {"signal": {}, "group": {}}
    names_of: dict[str, dict[str, int]] = {"signal": {}, "group": {}}
    minutes: list[int] = []
    values: list[float] = []
    signal_codes: list[int] = []
    group_codes: list[int] = []
    lines: list[int] = []

    def code(kind: str, raw: str, line: str) -> int:
        found = code_of[kind].get(raw)
        if found is None:
            names = names_of[kind]
            name = checked_name(raw, kind, where, line)
            found = code_of[kind][raw] = names.setdefault(name, len(names))
        return found

    for row in reader:
        if len(row) != width:
            if not row:
                continue
            raise ReplayError(
                f"{where}: line {reader.line_num}: expected {width} fields, got {len(row)}: {row!r}"
            )
        line = f"line {reader.line_num}"
        stamp = row[t_col]
        minute = minute_of.get(stamp)
        if minute is None:
            minute = minute_of[stamp] = parse_minute(stamp, where, line)
        try:
            value = float(row[v_col])
        except ValueError:
            raise ReplayError(f"{where}: {line}: value {row[v_col]!r} is not a number") from None
        minutes.append(minute)
        values.append(value)
        signal_codes.append(code("signal", row[s_col], line))
        group_codes.append(code("group", DEFAULT_GROUP if g_col is None else row[g_col], line))
        lines.append(reader.line_num)
    return Rows(
        minute=np.asarray(minutes, dtype=np.int64),
        value=np.asarray(values, dtype=np.float64),
        signal=np.asarray(signal_codes, dtype=np.intp),
        signals=list(names_of["signal"]),
        group=np.asarray(group_codes, dtype=np.intp),
        groups=list(names_of["group"]),
        locate=lambda i: f"line {lines[i]}",
    )
