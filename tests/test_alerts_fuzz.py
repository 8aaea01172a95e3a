"""Fuzzing the alarm parser: every input ends in a parsed alarm or one bounded line (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler.alerts.parse import Alarm, parse_alarm
from scaler.errors import InputError

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "alarms").glob("*.json"))
DOCUMENTS = [json.loads(p.read_text()) for p in EXAMPLES]
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["ALARM", "OK", "INSUFFICIENT_DATA", "Notification", "2026-03-02T11:26:00Z"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def mutated_alarms(draw: st.DrawFn) -> str:
    """A documented alarm with one value anywhere replaced, maybe wrapped in an SNS envelope."""
    doc = draw(st.sampled_from(DOCUMENTS))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        doc = _replace(doc, path, draw(json_values))
    text = json.dumps(doc)
    if draw(st.booleans()):
        text = json.dumps(
            {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": text}
        )
    return text


def _check(text: str | bytes) -> None:
    try:
        alarm = parse_alarm(text, "fuzz.json")
    except InputError as exc:
        message = str(exc)
        assert message.startswith("fuzz.json")
        assert "\n" not in message and len(message) < 1500
        assert not _CONTROL.search(message)
        return
    assert isinstance(alarm, Alarm)
    for text_field in (alarm.name, alarm.reason, *alarm.dimensions, *alarm.dimensions.values()):
        assert not _CONTROL.search(text_field)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_alarms())
def test_mutated_alarms_parse_or_fail_with_one_line(text: str) -> None:
    """Documented shapes with garbage anywhere: no uncaught exception, no raw control character."""
    _check(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200), json_values.map(json.dumps)))
def test_arbitrary_input_parses_or_fails_with_one_line(text: str | bytes) -> None:
    """Any bytes, any text, any JSON: an alarm or one bounded line."""
    _check(text)
