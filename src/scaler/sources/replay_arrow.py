"""The pyarrow front ends of the replay reader: a fast CSV path and Parquet.

Called only by `scaler.sources.replay`. The fast CSV path knows no line numbers: at the first
thing it finds odd it raises FastPathRefusedError, and the careful reader explains the line.
Repeated text (timestamps, signal and group names) is dictionary-encoded, so each distinct
timestamp is parsed once, by the same function the careful reader uses.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaler.errors import ReplayError
from scaler.signals import MINUTE
from scaler.sources.replay import (
    DEFAULT_GROUP,
    FastPathRefusedError,
    Rows,
    check_columns,
    checked_name,
    parse_minute,
)

__all__ = ["fast_csv_rows", "parquet_rows"]

_UNIT_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def fast_csv_rows(data: bytes) -> Rows:
    """A good CSV file's rows; FastPathRefusedError for anything else."""
    import pyarrow as pa

    try:
        return _fast_csv_rows(data)
    except (pa.ArrowException, ValueError, ReplayError) as exc:
        # Bad bytes, a bad field, a bad name: the careful reader finds the line and says it.
        raise FastPathRefusedError(str(exc)) from exc


def _fast_csv_rows(data: bytes) -> Rows:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text = pa.dictionary(pa.int32(), pa.string())
    table = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(
            column_types={"timestamp": text, "signal": text, "group": text, "value": pa.float64()},
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    check_columns(table.column_names, "")
    table = table.unify_dictionaries()
    stamps, stamp_codes = _dictionary(table.column("timestamp"))
    lut = _minutes(table.column("timestamp"), stamps)
    signals, signal_codes = _names(table.column("signal"), "signal")
    if "group" in table.column_names:
        groups, group_codes = _names(table.column("group"), "group")
    else:
        groups, group_codes = [DEFAULT_GROUP], np.zeros(table.num_rows, dtype=np.intp)
    return Rows(
        minute=lut[stamp_codes] if lut.size else np.zeros(0, dtype=np.int64),
        value=table.column("value").to_numpy(),
        signal=signal_codes,
        signals=signals,
        group=group_codes,
        groups=groups,
        locate=None,
    )


def _minutes(column: Any, stamps: list[str]) -> NDArray[np.int64]:
    """The epoch minute of each distinct timestamp: vectorised, or one by one if that fails."""
    import pyarrow as pa

    if not column.chunks:
        return np.zeros(0, dtype=np.int64)
    try:
        # Arrow refuses a time without a zone here, as the format does.
        seconds = column.chunks[0].dictionary.cast(pa.timestamp("s", tz="UTC")).cast(pa.int64())
        return np.asarray(seconds.to_numpy(), dtype=np.int64) // MINUTE
    except pa.ArrowException:
        return np.array([parse_minute(s, "", "") for s in stamps], dtype=np.int64)


def _dictionary(column: Any) -> tuple[list[str], NDArray[np.intp]]:
    """A dictionary column's values and every row's index into them."""
    chunks = column.chunks
    if not chunks:
        return [], np.zeros(0, dtype=np.intp)
    values = [str(v) for v in chunks[0].dictionary.to_pylist()]
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    return values, codes.astype(np.intp, copy=False)


def _names(column: Any, what: str) -> tuple[list[str], NDArray[np.intp]]:
    """Checked names, with raw spellings that strip to one name sharing one code."""
    raws, codes = _dictionary(column)
    names: dict[str, int] = {}
    remap = np.array(
        [names.setdefault(checked_name(r, what, "", ""), len(names)) for r in raws],
        dtype=np.intp,
    )
    return list(names), remap[codes] if remap.size else codes


def parquet_rows(data: bytes, where: str) -> Rows:
    """A Parquet replay's rows: columns timestamp (UTC), signal, value[, group]."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ReplayError(f"{where}: not a readable Parquet file: {exc}") from None
    check_columns(table.column_names, where).clear()
    for name in table.column_names:
        nulls = table.column(name).null_count
        if nulls and name != "value":
            row = _first_null(table.column(name).to_numpy(zero_copy_only=False))
            raise ReplayError(f"{where}: row {row + 1}: no {name}")

    stamps = table.column("timestamp")
    if pa.types.is_timestamp(stamps.type):
        if stamps.type.tz is None:
            raise ReplayError(
                f"{where}: column timestamp has no time zone; write UTC timestamps "
                "(Arrow type timestamp with tz='UTC')"
            )
        ticks = stamps.cast(pa.int64()).to_numpy()
        minute = ticks // (_UNIT_PER_SECOND[stamps.type.unit] * MINUTE)
    elif pa.types.is_string(stamps.type) or pa.types.is_dictionary(stamps.type):
        encoded = pc.dictionary_encode(stamps.cast(pa.string()))
        texts, codes = _dictionary(pa.table({"t": encoded}).unify_dictionaries().column("t"))
        lut = [parse_minute(t, where, f"row {_first(codes, i) + 1}") for i, t in enumerate(texts)]
        minute = np.asarray(lut, dtype=np.int64)[codes]
    else:
        raise ReplayError(
            f"{where}: column timestamp is {stamps.type}; want a UTC timestamp or ISO 8601 text"
        )
    values = table.column("value")
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise ReplayError(f"{where}: column value is {values.type}; want numbers")
    value = values.cast(pa.float64()).fill_null(float("nan")).to_numpy()
    signals, signal_codes = _parquet_names(table, "signal", where)
    if "group" in table.column_names:
        groups, group_codes = _parquet_names(table, "group", where)
    else:
        groups, group_codes = [DEFAULT_GROUP], np.zeros(table.num_rows, dtype=np.intp)
    return Rows(
        minute=minute.astype(np.int64, copy=False),
        value=np.asarray(value, dtype=np.float64),
        signal=signal_codes,
        signals=signals,
        group=group_codes,
        groups=groups,
        locate=lambda i: f"row {i + 1}",
    )


def _parquet_names(table: Any, what: str, where: str) -> tuple[list[str], NDArray[np.intp]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(what)
    if not pa.types.is_dictionary(column.type):
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            raise ReplayError(f"{where}: column {what} is {column.type}; want text")
        column = pc.dictionary_encode(column)
    raws, codes = _dictionary(pa.table({what: column}).unify_dictionaries().column(what))
    names: dict[str, int] = {}
    remap = []
    for i, raw in enumerate(raws):
        name = checked_name(raw, what, where, f"row {_first(codes, i) + 1}")
        remap.append(names.setdefault(name, len(names)))
    return list(names), np.asarray(remap, dtype=np.intp)[codes] if remap else codes


def _first(codes: NDArray[np.intp], code: int) -> int:
    return int(np.argmax(codes == code))


def _first_null(values: Any) -> int:
    return int(next((i for i, v in enumerate(values) if v is None), 0))
