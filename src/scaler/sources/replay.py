"""Replay files (docs/replay-format.md): long-format CSV or Parquet -> one Window per group.

Called by `scaler backtest`, `scaler report`, the demo and the bench. Three front ends feed one
assembler: pyarrow's CSV reader for good files (fast), a row-by-row reader that explains a bad
CSV file by line (careful), and Parquet. Whatever a fast front end finds odd, it hands to the
careful reader, so every error names the file and the line (Parquet: the row).
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaler.errors import ReplayError
from scaler.logs import get_logger
from scaler.signals import MINUTE, Signal, Window

__all__ = [
    "COUNT_SIGNALS",
    "DEFAULT_GROUP",
    "MAX_GRID_BYTES",
    "MAX_SPAN_MINUTES",
    "STDIN",
    "Codes",
    "FastPathRefusedError",
    "Rows",
    "Warn",
    "assemble",
    "check_columns",
    "checked_name",
    "parse_minute",
    "read_replay",
    "read_replay_bytes",
    "read_replay_text",
]

DEFAULT_GROUP = "default"
STDIN = "-"
REQUIRED_COLUMNS = ("timestamp", "signal", "value")
OPTIONAL_COLUMNS = ("group",)
#: A replay longer than this is almost certainly a typo in a year; refuse it rather than
#: allocate a grid for decades.
MAX_SPAN_MINUTES = 400 * 24 * 60
#: What the minute grids of one read may take. Empty minutes cost as much as full ones, so two
#: datapoints a year apart in 200 groups would ask for gigabytes; refuse and say how to cut.
MAX_GRID_BYTES = 512 * 2**20
#: Signals that count things: a negative value is a broken exporter, not a measurement.
COUNT_SIGNALS = frozenset(
    s.value
    for s in (
        Signal.QUEUE_VISIBLE,
        Signal.QUEUE_IN_FLIGHT,
        Signal.QUEUE_SENT,
        Signal.QUEUE_DELETED,
        Signal.INSTANCES,
    )
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")
_PARQUET_MAGIC = b"PAR1"

#: Small integer codes into a list of names (signals, groups); any integer width.
Codes = NDArray[np.integer[Any]]

#: Receives one-line warnings (unknown signals); the CLI prints them, the default logs them.
Warn = Callable[[str], None]
log = get_logger(__name__)


def _log_warning(message: str) -> None:
    log.warning("replay_warning", message=message)


def read_replay(
    path: str | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    warn: Warn = _log_warning,
) -> dict[str, Window]:
    """Read a replay file (CSV or `.parquet`; `-` is stdin) into windows by group.

    `since` (inclusive) and `until` (exclusive) keep only the minutes between them. Any bad
    row is a ReplayError naming the file and its line.
    """
    if str(path) == STDIN:
        return read_replay_bytes(sys.stdin.buffer.read(), "<stdin>", since, until, warn)
    path = Path(path)
    try:
        with path.open("rb") as stream:
            magic = stream.read(4)
        # pyarrow reads the file itself: the bytes are read into Python only to explain a line.
        return _read(path, magic, str(path), _Bounds.of(since, until), warn)
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read replay file: {exc.strerror or exc}") from exc


def read_replay_text(text: str, where: str = "<replay>") -> dict[str, Window]:
    """Read replay CSV from a string (tests, the bundled trace); `where` names it in errors."""
    return read_replay_bytes(text.encode("utf-8"), where)


def read_replay_bytes(
    data: bytes,
    where: str,
    since: datetime | None = None,
    until: datetime | None = None,
    warn: Warn = _log_warning,
) -> dict[str, Window]:
    """The windows in a replay file's bytes: Parquet by its magic number, else CSV."""
    return _read(data, data[:4], where, _Bounds.of(since, until), warn)


def _read(
    source: bytes | Path, magic: bytes, where: str, bounds: _Bounds, warn: Warn
) -> dict[str, Window]:
    from scaler.sources import replay_arrow

    if magic == _PARQUET_MAGIC:
        return assemble(replay_arrow.parquet_rows(source, where), where, bounds, warn)
    try:
        return assemble(replay_arrow.fast_csv_rows(source), where, bounds, warn)
    except FastPathRefusedError:
        pass  # the careful reader below finds the line and says what is wrong with it
    from scaler.sources.replay_careful import careful_rows

    data = source if isinstance(source, bytes) else source.read_bytes()
    return assemble(careful_rows(data, where), where, bounds, warn)


class FastPathRefusedError(Exception):
    """Raised inside the fast path: something is wrong; the careful reader will say what."""


@dataclass(frozen=True)
class Rows:
    """A replay file's datapoints as columns; `locate(i)` says where row i came from."""

    minute: NDArray[np.int64]
    value: NDArray[np.float64]
    signal: Codes
    signals: list[str]
    group: Codes
    groups: list[str]
    locate: Callable[[int], str] | None = (
        None  # None: a fast path that cannot say; FastPathRefusedError
    )


@dataclass(frozen=True)
class _Bounds:
    since: int | None = None
    until: int | None = None
    text: str = field(default="")

    @classmethod
    def of(cls, since: datetime | None, until: datetime | None) -> _Bounds:
        for flag, when in (("--since", since), ("--until", until)):
            if when is not None and when.tzinfo is None:
                raise ReplayError(f"{flag} {when.isoformat()} has no time zone")
        lo = int(since.timestamp()) // MINUTE if since else None
        # --until is exclusive: a minute that has started before it is still kept.
        hi = -(-int(until.timestamp()) // MINUTE) if until else None
        if lo is not None and hi is not None and lo >= hi:
            raise ReplayError(f"--since {_iso(lo)} is not before --until {_iso(hi)}")
        text = f" between {_iso(lo) if lo else 'the start'} and {_iso(hi) if hi else 'the end'}"
        return cls(lo, hi, text if (lo or hi) else "")


def check_columns(header: list[str], where: str) -> list[str]:
    """The header's column names, or a ReplayError naming what is wrong with them."""
    names = [h.strip() for h in header]
    unknown = [n for n in names if n not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        valid = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        raise ReplayError(f"{where}: line 1: unknown column {unknown[0]!r}; valid columns: {valid}")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ReplayError(
            f"{where}: line 1: header lacks column(s) {', '.join(missing)}; "
            f"a replay file starts with 'timestamp,signal,value[,group]'"
        )
    if len(set(names)) != len(names):
        raise ReplayError(f"{where}: line 1: a column is named twice in {names}")
    return names


def parse_minute(text: str, where: str, line: str) -> int:
    """The epoch minute of an ISO 8601 time with a zone; ReplayError naming `line` if not."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReplayError(
            f"{where}: {line}: bad timestamp {text!r}; write ISO 8601 in UTC, "
            "e.g. 2026-03-02T08:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise ReplayError(
            f"{where}: {line}: timestamp {text!r} has no time zone; "
            "write it in UTC with a trailing Z"
        )
    return int(when.timestamp()) // MINUTE


def checked_name(raw: str, what: str, where: str, line: str) -> str:
    """A signal or group name, stripped; ReplayError naming `line` if it is not a name."""
    name = raw.strip()
    if not _NAME.match(name):
        raise ReplayError(f"{where}: {line}: bad {what} name {raw!r}")
    return name


def _problem(rows: Rows, where: str, index: int, message: str) -> ReplayError:
    if rows.locate is None:
        raise FastPathRefusedError(message)
    return ReplayError(f"{where}: {rows.locate(index)}: {message}")


def assemble(
    rows: Rows, where: str, bounds: _Bounds | None = None, warn: Warn = _log_warning
) -> dict[str, Window]:
    """Check the rows as a whole and lay them on one minute grid per group."""
    bounds = bounds or _Bounds()
    keep = None
    if bounds.since is not None or bounds.until is not None:
        mask = np.ones(len(rows.minute), dtype=bool)
        if bounds.since is not None:
            mask &= rows.minute >= bounds.since
        if bounds.until is not None:
            mask &= rows.minute < bounds.until
        keep = np.flatnonzero(mask)
    minute, value, sig, grp = (
        (rows.minute, rows.value, rows.signal, rows.group)
        if keep is None
        else (rows.minute[keep], rows.value[keep], rows.signal[keep], rows.group[keep])
    )

    def origin(i: int) -> int:
        return int(i if keep is None else keep[i])

    infinite = np.flatnonzero(np.isinf(value))
    if infinite.size:
        i = int(infinite[0])
        raise _problem(rows, where, origin(i), f"value '{value[i]}' is infinite")
    counted = [c for c, name in enumerate(rows.signals) if name in COUNT_SIGNALS]
    if counted:
        negative = np.flatnonzero((value < 0) & np.isin(sig, counted))
        if negative.size:
            i = int(negative[0])
            name = rows.signals[int(sig[i])]
            raise _problem(
                rows,
                where,
                origin(i),
                f"signal {name!r} is {value[i]:g}; a count cannot be negative",
            )
    if minute.size == 0:
        if bounds.text and rows.minute.size:
            raise ReplayError(f"{where}: no datapoints{bounds.text}")
        return {}
    _warn_unknown(rows.signals, np.flatnonzero(np.bincount(sig)), where, warn)
    return _grids(rows, where, minute, value, sig, grp, origin, bounds)


def _warn_unknown(signals: list[str], used: Codes, where: str, warn: Warn) -> None:
    known = [s.value for s in Signal]
    for code in used:
        name = signals[int(code)]
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        warn(f"{where}: unknown signal {name!r} is kept, but no rule reads it{hint}")


def _grids(
    rows: Rows,
    where: str,
    minute: NDArray[np.int64],
    value: NDArray[np.float64],
    sig: Codes,
    grp: Codes,
    origin: Callable[[int], int],
    bounds: _Bounds,
) -> dict[str, Window]:
    n_groups, n_signals = len(rows.groups), len(rows.signals)
    if n_groups == 1:  # the common file: whole-array reductions, no scatter
        lo, hi = minute.min(keepdims=True), minute.max(keepdims=True)
        present = (np.bincount(sig, minlength=n_signals) > 0)[None, :]
    else:
        lo = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(lo, grp, minute)
        np.maximum.at(hi, grp, minute)
        present = np.zeros((n_groups, n_signals), dtype=bool)
        present[grp, sig] = True
    used = np.flatnonzero(present.any(axis=1))
    lengths = hi - lo + 1
    for g in used:
        if lengths[g] > MAX_SPAN_MINUTES:
            raise ReplayError(
                f"{where}: group {rows.groups[g]!r} spans {(hi[g] - lo[g]) / 1440:.0f} days "
                f"({_iso(int(lo[g]))} to {_iso(int(hi[g]))}); more than "
                f"{MAX_SPAN_MINUTES // 1440} days is refused - check for a mistyped year"
            )
    series_len = np.where(present, lengths[:, None], 0)
    cells = int(series_len.sum())
    if cells * 8 > MAX_GRID_BYTES:
        first, last = int(lo[used].min()), int(hi[used].max())
        raise ReplayError(
            f"{where}: {len(used)} group(s) from {_iso(first)} to {_iso(last)} "
            f"({(last - first) / 1440:.0f} days{bounds.text}) need {cells * 8 / 1e9:.1f} GB "
            f"of one-minute grids, more than the {MAX_GRID_BYTES // 2**20} MiB one read may "
            "take; cut a window with --since and --until (or split the file by group)"
        )
    offset = np.zeros((n_groups, n_signals), dtype=np.int64)
    offset.flat[:] = np.concatenate(([0], np.cumsum(series_len.ravel())[:-1]))
    # In place, a row at a time's worth of temporaries: the 30-day replay has 665,280 rows.
    if n_groups == 1:
        slot = minute - lo[0]
        slot += offset[0][sig]
    else:
        slot = minute - lo[grp]
        slot += offset[grp, sig]
    filled = np.bincount(slot, minlength=cells)
    if filled.max(initial=0) > 1:
        _refuse_duplicate(rows, where, slot, minute, sig, grp, origin)
    grid = np.full(cells, np.nan)
    grid[slot] = value
    windows: dict[str, Window] = {}
    for g in sorted(used, key=lambda g: rows.groups[g]):
        length = int(lengths[g])
        series = {
            rows.signals[s]: grid[offset[g, s] : offset[g, s] + length]
            for s in np.flatnonzero(present[g])
        }
        windows[rows.groups[g]] = Window(
            group=rows.groups[g],
            start=datetime.fromtimestamp(int(lo[g]) * MINUTE, UTC),
            length=length,
            series=series,
        )
    return windows


def _refuse_duplicate(
    rows: Rows,
    where: str,
    slot: NDArray[np.int64],
    minute: NDArray[np.int64],
    sig: Codes,
    grp: Codes,
    origin: Callable[[int], int],
) -> None:
    order = np.argsort(slot, kind="stable")
    repeats = np.flatnonzero(np.diff(slot[order]) == 0)
    # Of every repeated pair, name the one whose second row comes first in the file.
    seconds = order[repeats + 1]
    pick = int(np.argmin(seconds))
    first, second = int(order[repeats[pick]]), int(seconds[pick])
    first_at = rows.locate(origin(first)) if rows.locate else ""
    raise _problem(
        rows,
        where,
        origin(second),
        f"a second datapoint for signal {rows.signals[int(sig[second])]!r} in group "
        f"{rows.groups[int(grp[second])]!r} at {_iso(int(minute[second]))} "
        f"({first_at} has the first); one value per signal per minute",
    )


def _iso(minute: int) -> str:
    return datetime.fromtimestamp(minute * MINUTE, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
