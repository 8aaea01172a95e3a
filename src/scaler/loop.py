"""`--every`: run ticks on an interval, survive a failed one, back off, stop cleanly on a signal."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from scaler.errors import InputError
from scaler.logs import get_logger

__all__ = ["MAX_BACKOFF", "parse_interval", "run_every"]

log = get_logger(__name__)

#: However many ticks fail in a row, the next one is tried within this.
MAX_BACKOFF = timedelta(minutes=15)
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_interval(text: str, flag: str = "--every") -> timedelta:
    """'60', '60s', '5m' or '1h' as a duration; anything else is an InputError naming `flag`."""
    match = _INTERVAL.match(text)
    if not match:
        raise InputError(f"{flag} {text!r}: give seconds, or a number with s, m or h (e.g. 60s)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 1:
        raise InputError(f"{flag} {text!r}: the interval must be at least 1 second")
    return timedelta(seconds=seconds)


def run_every(
    tick: Callable[[], bool],
    every: timedelta,
    stop: threading.Event,
    *,
    max_backoff: timedelta = MAX_BACKOFF,
    max_ticks: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Call `tick` every `every` until `stop` is set; returns how many ticks ran.

    A tick that returns False or raises is logged and the next waits twice as long as the
    last (up to `max_backoff`); a tick that succeeds restores the interval. Ticks start on the
    interval from the previous start, so a slow tick does not drift the schedule.
    """
    failures = ran = 0
    while not stop.is_set() and (max_ticks is None or ran < max_ticks):
        started = clock()
        try:
            ok = tick()
        except Exception as exc:  # a daemon outlives one bad tick; logged in full
            log.exception("tick_crashed", error=str(exc))
            ok = False
        ran += 1
        failures = 0 if ok else failures + 1
        delay = every if ok else min(every * 2**failures, max(max_backoff, every))
        if not ok:
            log.warning("tick_failed", failures=failures, next_in_s=delay.total_seconds())
        if max_ticks is not None and ran >= max_ticks:
            break
        stop.wait(max(0.0, delay.total_seconds() - (clock() - started)))
    return ran
