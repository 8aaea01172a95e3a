"""The shard plan: how many shards, which group goes where (stable, balanced, each group once),
the settings from the function's environment, and the checks a worker makes on a message."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.errors import InputError
from scaler.fanout import (
    DEFAULT_GROUPS_PER_WORKER,
    BadShardMessageError,
    ShardMessage,
    fan_out_settings,
    parse_shard_message,
    plan_shards,
    shard_count,
    shard_of,
)
from scaler.policy import GroupPolicy, Policy

TICK = datetime(2026, 11, 23, 21, 30, tzinfo=UTC)


def fleet(n: int, prefix: str = "group") -> Policy:
    """A policy of `n` groups named prefix-00000 ... ."""
    return Policy(groups=[GroupPolicy(name=f"{prefix}-{i:05d}") for i in range(n)])


@pytest.mark.parametrize(
    ("groups", "per_worker", "shards"),
    [
        (1, 250, 1),
        (250, 250, 1),
        (251, 250, 2),
        (1000, 250, 4),
        (5000, 250, 20),
        (6, 2, 3),
        (7, 2, 4),
        (3, 1, 3),
    ],
)
def test_shard_count(groups: int, per_worker: int, shards: int) -> None:
    """As many shards as it takes to keep each near `per_worker` groups; one is inline."""
    assert shard_count(groups, per_worker) == shards


@pytest.mark.parametrize(
    ("key", "shards", "expected"),
    # Fixed digests: a change here moves every deployed fleet's groups between shards.
    [("processor-0-asg", 3, 0), ("processor-4-asg", 3, 1), ("processor-1-asg", 3, 2)],
)
def test_a_groups_shard_is_the_same_in_every_process(key: str, shards: int, expected: int) -> None:
    """Never Python's salted hash: another process (another worker) computes the same shard."""
    assert shard_of(key, shards) == expected


@pytest.mark.parametrize(
    ("groups", "shards", "most_over_mean"),
    [(1000, 4, 1.05), (5000, 20, 1.16), (10_000, 40, 1.14), (600, 3, 1.04)],
)
def test_shards_are_balanced(groups: int, shards: int, most_over_mean: float) -> None:
    """The largest shard stays within a few tenths of the mean: the worker's budget needs
    that headroom over SCALER_GROUPS_PER_WORKER (the README says so)."""
    sizes = Counter(shard_of(f"group-{i:05d}", shards) for i in range(groups))
    assert sorted(sizes) == list(range(shards))
    assert max(sizes.values()) / (groups / shards) <= most_over_mean


@pytest.mark.parametrize(
    ("groups", "per_worker"), [(1, 250), (7, 2), (60, 7), (600, DEFAULT_GROUPS_PER_WORKER)]
)
def test_every_group_is_in_exactly_one_shard_and_stays_there(groups: int, per_worker: int) -> None:
    """Each group once, in the shard its Auto Scaling group's name hashes to, whatever the
    order of the policy's groups."""
    policy = fleet(groups)
    messages = plan_shards(policy, tick=TICK, groups_per_worker=per_worker)
    named = [g for m in messages for g in m.groups]
    assert sorted(named) == sorted(policy.names())
    shards = shard_count(groups, per_worker)
    assert all(m.shards == shards and m.tick == TICK for m in messages)
    assert all(shard_of(g, m.shards) == m.shard for m in messages for g in m.groups)
    reordered = policy.model_copy(update={"groups": list(reversed(policy.groups))})
    again = plan_shards(reordered, tick=TICK, groups_per_worker=per_worker)
    assert {m.shard: set(m.groups) for m in again} == {m.shard: set(m.groups) for m in messages}


@given(
    names=st.sets(st.text(min_size=1, max_size=40), min_size=1, max_size=60),
    shards=st.integers(min_value=1, max_value=12),
)
def test_any_names_split_into_shards_cover_each_once(names: set[str], shards: int) -> None:
    """Whatever the group names, each lands in one shard, in range, the same every time."""
    placed = {name: shard_of(name, shards) for name in names}
    assert all(0 <= s < shards for s in placed.values())
    assert placed == {name: shard_of(name, shards) for name in sorted(names)}


def test_groups_sharing_an_auto_scaling_group_share_a_shard() -> None:
    """Two policy groups naming one Auto Scaling group share its lease: one worker has both."""
    groups = [GroupPolicy(name=f"view-{i}", auto_scaling_group="shared-asg") for i in range(5)]
    policy = Policy(groups=[*groups, *fleet(40).groups])
    messages = plan_shards(policy, tick=TICK, groups_per_worker=5)
    (holder,) = [m for m in messages if "view-0" in m.groups]
    assert {f"view-{i}" for i in range(5)} <= set(holder.groups)


def test_a_shard_too_large_for_one_message_is_refused_with_the_fix() -> None:
    """SQS holds 256 KiB a message: the plan says which setting to lower."""
    long_names = Policy(groups=[GroupPolicy(name=f"{i:05d}-" + "x" * 240) for i in range(1200)])
    with pytest.raises(InputError, match="lower SCALER_GROUPS_PER_WORKER"):
        plan_shards(long_names, tick=TICK, groups_per_worker=1200)


@pytest.mark.parametrize(
    ("environ", "queue", "per_worker"),
    [
        ({}, None, DEFAULT_GROUPS_PER_WORKER),
        ({"SCALER_SHARD_QUEUE": "https://q"}, "https://q", DEFAULT_GROUPS_PER_WORKER),
        ({"SCALER_SHARD_QUEUE": " ", "SCALER_GROUPS_PER_WORKER": "40"}, None, 40),
        ({"SCALER_GROUPS_PER_WORKER": " 1 "}, None, 1),
    ],
)
def test_fan_out_settings(environ: dict[str, str], queue: str | None, per_worker: int) -> None:
    """The function's environment: no queue, no fan-out; the group count a worker takes."""
    settings = fan_out_settings(environ)
    assert (settings.queue_url, settings.groups_per_worker) == (queue, per_worker)


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5"])
def test_a_bad_groups_per_worker_names_the_setting_and_the_fix(value: str) -> None:
    with pytest.raises(InputError, match=rf"SCALER_GROUPS_PER_WORKER='{value}'.*1 or more"):
        fan_out_settings({"SCALER_GROUPS_PER_WORKER": value})


POLICY = fleet(6, prefix="p")
SHARDS = 3
GOOD = ShardMessage(
    tick=TICK,
    shard=1,
    shards=SHARDS,
    groups=[g for g in POLICY.names() if shard_of(g, SHARDS) == 1],
)


def body(**changes: object) -> str:
    """The good message's JSON with fields changed (None: removed)."""
    data = json.loads(GOOD.body())
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize(
    ("text", "at", "error"),
    [
        ("{not json", TICK, "not a shard message"),
        (body(kind="other"), TICK, "not a shard message"),
        (body(version=2), TICK, "not a shard message"),
        (body(tick=None), TICK, "not a shard message"),
        (body(tick="2026-11-23T21:30:00"), TICK, "not a shard message"),  # no time zone
        (body(groups=[]), TICK, "not a shard message"),
        (body(shard=3), TICK, "shards count from 0"),
        (body(groups=GOOD.groups * 2), TICK, "named twice"),
        (body(extra=1), TICK, "not a shard message"),
        (body(groups=["ghost"]), TICK, "'ghost' not in the policy"),
        (body(shard=0, groups=GOOD.groups), TICK, "belong to another shard"),
        (body(shards=5), TICK, "belong to another shard"),
        (GOOD.body(), TICK + timedelta(seconds=61), "61s old"),
    ],
)
def test_a_message_no_worker_can_tick_is_refused_saying_why(
    text: str, at: datetime, error: str
) -> None:
    with pytest.raises(BadShardMessageError, match=error):
        parse_shard_message(text, POLICY, now=at, max_age=timedelta(minutes=1))


@pytest.mark.parametrize("age", [timedelta(0), timedelta(seconds=59), timedelta(minutes=1)])
def test_a_message_within_its_minute_is_ticked_at_the_schedulers_time(age: timedelta) -> None:
    parsed = parse_shard_message(GOOD.body(), POLICY, now=TICK + age, max_age=timedelta(minutes=1))
    assert parsed == GOOD
