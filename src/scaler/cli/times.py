"""Times on the command line: ISO 8601 with a zone, `now`, or relative to now (`-6h`).

Used by `scaler export` (--start/--end) and `scaler backtest`/`report` (--since/--until).
`now` is an argument, so the same text means the same time in a test.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from scaler.errors import InputError

__all__ = ["accept_relative_times", "parse_when"]

_RELATIVE = re.compile(r"^(?:now)?\s*-\s*(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, flag: str, *, now: datetime) -> datetime:
    """A UTC datetime from `text`; InputError naming `flag` and the accepted forms if not."""
    cleaned = text.strip().lower()
    if cleaned == "now":
        return now.astimezone(UTC)
    relative = _RELATIVE.match(cleaned)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2)
        return now.astimezone(UTC) - timedelta(**{_UNIT[unit]: amount})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{flag} {text!r}: not a time; write ISO 8601 with a zone (2026-03-02T08:00Z), "
            "now, or a time before now such as -6h, -90m, -2d"
        ) from None
    if when.tzinfo is None:
        example = when.strftime("%Y-%m-%dT%H:%MZ")
        raise InputError(f"{flag} {text!r} has no time zone; for UTC write {example}")
    return when.astimezone(UTC)


def accept_relative_times(parser: argparse.ArgumentParser) -> None:
    """Let `--start -6h` pass `-6h` as a value rather than an unknown flag.

    argparse reads an argument that starts with '-' as a value only when it looks like a
    negative number; this widens "number" to a number with a unit. (`--start=-6h` always works.)
    """
    parser._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?[smhdw]?$")
