"""The signal vocabulary of SIGNALS.md and the Window: one group's signals on a minute grid."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from scaler.numeric import Series, ffill

__all__ = [
    "EBS_BYTES",
    "EBS_OPS",
    "MINUTE",
    "Series",
    "Signal",
    "Window",
    "floor_minute",
]

MINUTE = 60
_T = TypeVar("_T")


class Signal(StrEnum):
    """Signals every source speaks; see SIGNALS.md for units and AWS origins."""

    QUEUE_VISIBLE = "queue_visible"
    QUEUE_IN_FLIGHT = "queue_in_flight"
    QUEUE_OLDEST_AGE = "queue_oldest_age"
    QUEUE_SENT = "queue_sent"
    QUEUE_DELETED = "queue_deleted"
    INSTANCES = "instances"
    CPU_USER = "cpu_user"
    CPU_IOWAIT = "cpu_iowait"
    EBS_READ_OPS = "ebs_read_ops"
    EBS_WRITE_OPS = "ebs_write_ops"
    EBS_READ_BYTES = "ebs_read_bytes"
    EBS_WRITE_BYTES = "ebs_write_bytes"
    EBS_BYTE_BALANCE = "ebs_byte_balance"
    EBS_IO_BALANCE = "ebs_io_balance"
    EBS_THROUGHPUT_EXCEEDED = "ebs_throughput_exceeded"
    EBS_IOPS_EXCEEDED = "ebs_iops_exceeded"
    CPU_SYSTEM = "cpu_system"
    CPU_STEAL = "cpu_steal"
    CPU_IDLE = "cpu_idle"
    MEM_USED = "mem_used"
    WORK_LATENCY = "work_latency"


#: The parts of per-instance EBS usage: read + write, in bytes and in operations.
EBS_BYTES = (Signal.EBS_READ_BYTES, Signal.EBS_WRITE_BYTES)
EBS_OPS = (Signal.EBS_READ_OPS, Signal.EBS_WRITE_OPS)


def floor_minute(when: datetime) -> datetime:
    """The start of the UTC minute that holds `when`."""
    return when.astimezone(UTC).replace(second=0, microsecond=0)


def _frozen(values: Any) -> Series:
    array = np.array(values, dtype=np.float64, copy=True)
    array.flags.writeable = False
    return array


class Window(BaseModel):
    """Aligned one-minute series for one scaling group; NaN marks a missing datapoint.

    Index i is the minute `start + i`. Every series has the same length; a signal absent
    from the source is absent from `series` (which is different from a series of NaN:
    the first says "this fleet never reports it", the second "no data came").
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    group: str
    start: datetime
    length: int
    series: Mapping[str, Series]

    @cached_property
    def _derived(self) -> dict[Hashable, Any]:
        # Series derived from this window (smoothed rates, say), computed once for every rule
        # that asks: the window is immutable, so a derived series can never go stale. Kept in
        # the instance's __dict__ (a pydantic private attribute is read through __getattr__,
        # a third of a microsecond dearer, and a live tick reads it ~30 times a group).
        return {}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Window:
        """A copy; one with other series must not inherit what was derived from these."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_derived", None)
        return copied

    @field_validator("start")
    @classmethod
    def _minute_aligned_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        return floor_minute(value)

    @field_validator("series", mode="before")
    @classmethod
    def _freeze_series(cls, value: Mapping[str, Any]) -> Mapping[str, Series]:
        return MappingProxyType({str(k): _frozen(v) for k, v in value.items()})

    @model_validator(mode="after")
    def _same_length(self) -> Window:
        if self.length < 0:
            raise ValueError("length must be >= 0")
        for name, values in self.series.items():
            if values.shape != (self.length,):
                raise ValueError(f"series {name!r} has shape {values.shape}, want ({self.length},)")
        return self

    @classmethod
    def from_points(
        cls,
        group: str,
        points: Mapping[str, Iterable[tuple[datetime, float]]],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Window:
        """Build a window from (time, value) points per signal, later points winning.

        `start` and `end` (inclusive minutes) default to the span of the points.
        """
        epoch_points = {
            name: [(int(floor_minute(t).timestamp()) // MINUTE, v) for t, v in pts]
            for name, pts in points.items()
        }
        minutes = [m for pts in epoch_points.values() for m, _ in pts]
        first = int(floor_minute(start).timestamp()) // MINUTE if start else min(minutes, default=0)
        last = int(floor_minute(end).timestamp()) // MINUTE if end else max(minutes, default=-1)
        length = max(last - first + 1, 0)
        series: dict[str, Series] = {}
        for name, pts in epoch_points.items():
            values = np.full(length, np.nan)
            for minute, value in pts:
                if first <= minute <= last:
                    values[minute - first] = value
            series[name] = values
        return cls(
            group=group,
            start=datetime.fromtimestamp(first * MINUTE, UTC),
            length=length,
            series=series,
        )

    @property
    def end(self) -> datetime:
        """The last minute of the window (equal to start for an empty window)."""
        return self.time_at(max(self.length - 1, 0))

    def time_at(self, index: int) -> datetime:
        """The UTC minute at position `index`."""
        return self.start + timedelta(minutes=index)

    def derived(self, key: Hashable, make: Callable[[], _T]) -> _T:
        """What `make` computes from this window, computed on the first call for `key` only."""
        if key not in self._derived:
            self._derived[key] = make()
        value: _T = self._derived[key]
        return value

    def has(self, signal: str) -> bool:
        """Whether the source reports this signal at all (it may still be all NaN)."""
        return signal in self.series

    def get(self, signal: str) -> Series | None:
        """The series of a signal, or None where the source does not report it."""
        return self.series.get(signal)

    def missing(self, signals: Iterable[str]) -> list[str]:
        """The signals in `signals` that this window lacks or holds only NaN for."""
        return [s for s in signals if s not in self.series or bool(np.isnan(self.series[s]).all())]

    def total(self, parts: Iterable[str]) -> Series | None:
        """Per-minute sum of the reported `parts` (EBS read + write), None if none is reported.

        A part the source never reports is left out (a fleet may report reads only); a minute
        at which a reported part is missing is missing (NaN): half a reading is unknown, not
        small, and would understate usage and so overstate what an instance can take.
        """
        key = ("total", tuple(parts))
        return self.derived(key, lambda: self._total(key[1]))

    def _total(self, parts: tuple[str, ...]) -> Series | None:
        present = [self.series[p] for p in parts if p in self.series]
        return _frozen(np.sum(present, axis=0)) if present else None

    def filled(self, signal: str, limit: int) -> Series | None:
        """The signal with each value carried over at most `limit` missing minutes (5-minute
        data read per minute); None where the source does not report it."""
        values = self.series.get(signal)
        if values is None:
            return None
        return self.derived(("filled", signal, limit), lambda: _frozen(ffill(values, limit)))

    def slice(self, first: int, stop: int) -> Window:
        """Minutes `first` up to (not including) `stop`, clipped to the window."""
        first = min(max(first, 0), self.length)
        stop = min(max(stop, first), self.length)
        if first == 0 and stop == self.length:
            return self  # immutable: the whole window is itself, with what it has derived
        # Views of this window's read-only, validated series: nothing to check or copy again
        # (a live tick slices every group's window several times).
        part = Window.model_construct(
            group=self.group,
            start=self.time_at(first),
            length=stop - first,
            series=MappingProxyType({k: v[first:stop] for k, v in self.series.items()}),
        )
        # A per-minute sum is the same on any span: the part takes its share of the totals
        # already made (a backtest measures demand on a slice at every minute with a type
        # opinion). Series derived across minutes (smoothed, carried) are the part's own.
        part._derived.update(
            (key, None if total is None else total[first:stop])
            for key, total in self._derived.items()
            if isinstance(key, tuple) and key[0] == "total"
        )
        return part

    def head(self, minutes: int) -> Window:
        """The first `minutes` minutes of this window."""
        return self.slice(0, minutes)

    def tail(self, minutes: int) -> Window:
        """The last `minutes` minutes of this window."""
        return self.slice(self.length - max(minutes, 0), self.length)
