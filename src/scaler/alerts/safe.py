"""Text that came from outside, made safe to print, page and post: no control characters, bounded.

An alarm's name, reason, labels and dimensions are written by whoever can publish to the topic.
Printed raw, a newline forges lines in the pager summary ("RESOLVED: all clear") and an escape
sequence rewrites the terminal. Every outside string passes through `clean` once, in the parser,
so everything downstream (text, JSON, pages, posts) handles safe text only. Called by
`alerts.parse` and by the renderers for the one-line errors they build from outside values.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_INPUT_BYTES", "MAX_NESTING", "clean", "nesting_depth", "shown"]

#: SNS messages (and so every alarm notification) are at most 256 KB.
MAX_INPUT_BYTES = 256 * 1024
#: Alarm documents are a few levels deep; a thousand-deep document is an attack, not an alarm.
MAX_NESTING = 32

# C0 and C1 controls and DEL; line and paragraph separators; bidirectional overrides and
# isolates (they reorder what a reader sees, "Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean(text: object, limit: int = 1024) -> str:
    """`text` as one printable line: controls shown escaped (\\x1b), at most `limit` characters."""
    value = text if isinstance(text, str) else str(text)
    if len(value) > limit * 4:  # escaping at most quadruples a character: cut before the work
        value = value[: limit * 4]
    value = _UNSAFE.sub(_escape, unicodedata.normalize("NFC", value))
    if len(value) > limit:
        value = value[: max(limit - 1, 0)] + "…"
    return value


def shown(value: object, limit: int = 60) -> str:
    """A short, quoted, safe rendering of an outside value for an error message."""
    return repr(clean(value, limit))


def nesting_depth(text: str) -> int:
    """How deep JSON text nests its arrays and objects (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
