"""`--every`: interval parsing, backoff after failed ticks, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from scaler.control import SqliteStateStore
from scaler.demo.embedded import LocalAws
from scaler.errors import InputError
from scaler.loop import parse_interval, run_every

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "seconds"), [("60", 60), ("60s", 60), ("5m", 300), ("1h", 3600), ("1.5m", 90)]
)
def test_intervals(text: str, seconds: int) -> None:
    """Seconds, minutes and hours are understood."""
    assert parse_interval(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "5d", "-1s", "0", "0.5s"])
def test_bad_intervals_name_the_flag(text: str) -> None:
    """Anything else is bad input that names --every."""
    with pytest.raises(InputError, match="--every"):
        parse_interval(text)


class _Waits(threading.Event):
    """An Event that records how long the loop asked to wait, and never sleeps."""

    def __init__(self) -> None:
        super().__init__()
        self.waited: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.append(round(timeout or 0.0, 3))
        return self.is_set()


def test_failed_ticks_back_off_and_a_good_tick_restores_the_interval() -> None:
    """False, a crash, False, then True: waits of 2, 4, 8 intervals (capped), then 1 again."""
    outcomes = iter([False, "crash", False, True, True])

    def tick() -> bool:
        outcome = next(outcomes)
        if outcome == "crash":
            raise RuntimeError("a bug in one tick")
        return bool(outcome)

    stop = _Waits()
    ran = run_every(
        tick,
        timedelta(seconds=10),
        stop,
        max_backoff=timedelta(seconds=60),
        max_ticks=5,
        clock=lambda: 0.0,
    )
    assert ran == 5
    assert stop.waited == [20.0, 40.0, 60.0, 10.0]


def test_a_slow_tick_does_not_drift_the_schedule() -> None:
    """The wait is the interval minus the time the tick took."""
    times = iter([0.0, 4.0, 10.0, 13.0])
    stop = _Waits()
    run_every(lambda: True, timedelta(seconds=10), stop, max_ticks=2, clock=lambda: next(times))
    assert stop.waited == [6.0]


def test_stop_ends_the_loop_after_the_current_tick() -> None:
    """A stop set during a tick lets that tick finish and starts no other."""
    stop = threading.Event()
    ran: list[int] = []

    def tick() -> bool:
        ran.append(1)
        stop.set()
        return True

    assert run_every(tick, timedelta(seconds=1), stop) == 1
    assert ran == [1]


def test_sigterm_stops_a_running_loop_cleanly(aws: LocalAws, tmp_path: Path) -> None:
    """`scaler run --every` exits 0 on SIGTERM, its state file whole and no intent left open."""
    policy = tmp_path / "p.yaml"
    policy.write_text("groups:\n  - name: nothing-here\n")
    state = tmp_path / "state.db"
    env = {
        **os.environ,
        "SCALER_STATE": str(state),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = [sys.executable, "-m", "scaler", "run", "--policy", str(policy), "--every", "1s"]
    process = subprocess.Popen(
        [*command, "--endpoint-url", aws.endpoint_url, "--format", "json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # one tick has run: the loop is live
        assert '"tick_id"' in first
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)  # drains the pipes while it stops
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    store = SqliteStateStore(state)
    try:
        assert store.open_intents("nothing-here") == []
    finally:
        store.close()
