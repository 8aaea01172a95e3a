"""The pyarrow front ends of the replay reader: a fast CSV path and Parquet.

Called only by `scaler.sources.replay`. The fast CSV path knows no line numbers: at the first
thing it finds odd it raises FastPathRefusedError, and the careful reader explains the line.
Repeated text (timestamps, signal and group names) is dictionary-encoded, so each distinct
timestamp is parsed once, by the same function the careful reader uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scaler.errors import ReplayError
from scaler.signals import MINUTE
from scaler.sources.replay import (
    DEFAULT_GROUP,
    Codes,
    FastPathRefusedError,
    Rows,
    check_columns,
    checked_name,
    parse_minute,
)

__all__ = ["fast_csv_rows", "parquet_rows"]

_UNIT_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def fast_csv_rows(data: bytes | Path) -> Rows:
    """A good CSV file's rows; FastPathRefusedError for anything else."""
    import pyarrow as pa

    try:
        return _fast_csv_rows(data)
    except (pa.ArrowException, ValueError, ReplayError) as exc:
        # Bad bytes, a bad field, a bad name: the careful reader finds the line and says it.
        raise FastPathRefusedError(str(exc)) from exc


def _fast_csv_rows(data: bytes | Path) -> Rows:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text = pa.dictionary(pa.int32(), pa.string())
    table = pacsv.read_csv(
        pa.BufferReader(data) if isinstance(data, bytes) else str(data),
        # One thread and 1 MiB blocks: as fast on two cores as parallel 16 MiB blocks, and a
        # third of their peak memory (`make bench` holds the 30-day replay under 200 MiB).
        read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types={
                # Arrow refuses a time without a zone for this type, as the format does.
                "timestamp": pa.timestamp("s", tz="UTC"),
                "signal": text,
                "group": text,
                "value": pa.float64(),
            },
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
        # malloc's pool: what the read frees, the rules can reuse (mimalloc would keep it).
        memory_pool=pa.system_memory_pool(),
    )
    check_columns(table.column_names, "")
    table = table.unify_dictionaries(pa.system_memory_pool())
    minute = _numbers(table.column("timestamp"), np.int64)  # seconds: timestamp[s] is int64
    minute //= MINUTE
    signals, signal_codes = _names(table.column("signal"), "signal")
    if "group" in table.column_names:
        groups, group_codes = _names(table.column("group"), "group")
    else:
        groups, group_codes = [DEFAULT_GROUP], np.zeros(table.num_rows, dtype=np.int8)
    return Rows(
        minute=minute,
        value=_numbers(table.column("value"), np.float64),
        signal=signal_codes,
        signals=signals,
        group=group_codes,
        groups=groups,
        locate=None,
    )


def _numbers(column: Any, dtype: Any) -> Any:
    """A numeric Arrow array or chunked array without nulls as one numpy array.

    Read straight from the Arrow buffers: `to_numpy()` would import pandas where it is
    installed (half a second and 50 MB, for nothing).
    """
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    parts = []
    for chunk in chunks:
        if chunk.null_count:
            raise ValueError("nulls where none may be")
        data = chunk.buffers()[1]
        width = np.dtype(dtype).itemsize
        parts.append(
            np.frombuffer(data, dtype=dtype, count=len(chunk), offset=chunk.offset * width)
            if data is not None
            else np.zeros(0, dtype=dtype)
        )
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _codes(column: Any) -> Codes:
    """Every row's index into a (unified) dictionary column's values."""
    if not column.chunks:
        return np.zeros(0, dtype=np.int32)
    parts = [_numbers(c.indices, np.dtype(str(c.indices.type))) for c in column.chunks]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _dictionary(column: Any) -> tuple[list[str], Codes]:
    """A dictionary column's values and every row's index into them."""
    if not column.chunks:
        return [], np.zeros(0, dtype=np.int32)
    values = [str(v) for v in column.chunks[0].dictionary.to_pylist()]
    return values, _codes(column)


def _names(column: Any, what: str) -> tuple[list[str], Codes]:
    """Checked names, with raw spellings that strip to one name sharing one code."""
    raws, codes = _dictionary(column)
    names: dict[str, int] = {}
    remap = np.array(
        [names.setdefault(checked_name(r, what, "", ""), len(names)) for r in raws],
        dtype=np.int32,
    )
    return list(names), remap[codes] if remap.size else codes


def parquet_rows(data: bytes | Path, where: str) -> Rows:
    """A Parquet replay's rows: columns timestamp (UTC), signal, value[, group]."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(
            pa.BufferReader(data) if isinstance(data, bytes) else str(data),
            read_dictionary=["signal", "group"],  # names come back as codes, not strings
        )
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ReplayError(f"{where}: not a readable Parquet file: {exc}") from None
    check_columns(table.column_names, where)
    for name in table.column_names:
        nulls = table.column(name).null_count
        if nulls and name != "value":
            row = _first_null(table.column(name).to_pylist())
            raise ReplayError(f"{where}: row {row + 1}: no {name}")

    stamps = table.column("timestamp")
    if pa.types.is_timestamp(stamps.type):
        if stamps.type.tz is None:
            raise ReplayError(
                f"{where}: column timestamp has no time zone; write UTC timestamps "
                "(Arrow type timestamp with tz='UTC')"
            )
        ticks = _numbers(stamps.cast(pa.int64()), np.int64)
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
    values = values.cast(pa.float64())
    value = _numbers(values.fill_null(float("nan")) if values.null_count else values, np.float64)
    signals, signal_codes = _parquet_names(table, "signal", where)
    if "group" in table.column_names:
        groups, group_codes = _parquet_names(table, "group", where)
    else:
        groups, group_codes = [DEFAULT_GROUP], np.zeros(table.num_rows, dtype=np.int8)
    return Rows(
        minute=minute.astype(np.int64, copy=False),
        value=np.asarray(value, dtype=np.float64),
        signal=signal_codes,
        signals=signals,
        group=group_codes,
        groups=groups,
        locate=lambda i: f"row {i + 1}",
    )


def _parquet_names(table: Any, what: str, where: str) -> tuple[list[str], Codes]:
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
    return list(names), np.asarray(remap, dtype=np.int32)[codes] if remap else codes


def _first(codes: Codes, code: int) -> int:
    return int(np.argmax(codes == code))


def _first_null(values: Any) -> int:
    return int(next((i for i, v in enumerate(values) if v is None), 0))
