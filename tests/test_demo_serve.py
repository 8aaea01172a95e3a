"""`scaler demo --serve` in a subprocess, as a new user runs it, then every command against it.

The issue's "done when": with the demo serving, `scaler enrich --send` on the bundled
metric-math alarm delivers a PagerDuty event whose summary names iowait_bound and the
capacity, and the OK alarm resolves it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from scaler.cli import EXIT_OK, main
from scaler.demo.serve import READY, restamp


@pytest.mark.parametrize(
    ("text", "shift", "expected"),
    [
        ('"2026-03-02T11:26:00.000+0000"', timedelta(hours=2), '"2026-03-02T13:26:00.000+0000"'),
        ("at 2026-03-02T23:59:00Z.", timedelta(minutes=2), "at 2026-03-03T00:01:00Z."),
        ("no time here", timedelta(days=1), "no time here"),
    ],
)
def test_restamp_moves_every_time(text: str, shift: timedelta, expected: str) -> None:
    """The sample alarms' times move onto the seeded incident, whatever their suffix."""
    assert restamp(text, shift) == expected


class Served:
    """The running demo: its output lines as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 90) -> str:
        """The first line matching `pattern`, already printed or still to come."""
        for line in self.seen:
            if re.search(pattern, line):
                return line
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, "\n".join(self.seen)
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.seen))


@pytest.fixture
def served() -> Iterator[Served]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "scaler", "demo", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        yield Served(process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_demo_serve_then_every_command_and_a_page_end_to_end(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """advise, run, history and enrich against the served demo; the page arrives and resolves."""
    served.wait_for(re.escape(READY))
    export = next(line for line in served.seen if line.startswith("export "))
    for pair in export.removeprefix("export ").split():
        name, value = pair.split("=", 1)
        monkeypatch.setenv(name, value)
    commands = [line.split() for line in served.seen if re.match(r"scaler [a-z]+ --policy", line)]
    assert [c[1] for c in commands] == ["advise", "run", "history", "enrich", "enrich", "enrich"]
    workdir = Path(commands[0][3]).parent
    for command in commands[:4]:
        assert main(command[1:]) == EXIT_OK, command
    assert "iowait_bound" in capsys.readouterr().out

    assert main(commands[4][1:]) == EXIT_OK  # enrich ALARM --send
    assert "sent (HTTP 202: trigger scaler/crash-processor/" in capsys.readouterr().out
    trigger = served.wait_for(r"^pagerduty received: trigger")
    assert "crash-processor: iowait_bound" in trigger
    assert re.search(r"\d+ × m5\.xlarge now \(from 8\)", trigger)
    served.wait_for(r"^slack received: crash-processor: iowait_bound")

    assert main(commands[5][1:]) == EXIT_OK  # enrich OK --send
    dedup = trigger.split()[3].rstrip(":")
    served.wait_for(rf"^pagerduty received: resolve {re.escape(dedup)}$")

    assert main(["history", "--policy", str(workdir / "policy.yaml")]) == EXIT_OK
    assert "page-slack-" in capsys.readouterr().out  # Slack's sends, in the audit log

    served.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert served.process.wait(15) == 0
    assert not workdir.exists()  # the demo cleans up after itself
