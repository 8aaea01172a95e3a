"""`scaler backtest` as a user runs it: stdin, Parquet, --since/--until, warnings, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scaler.cli import EXIT_BAD_INPUT, EXIT_OK, main
from scaler.cli.demo import incident_text


@pytest.fixture
def incident(tmp_path: Path) -> Path:
    path = tmp_path / "incident.csv"
    path.write_text(incident_text())
    return path


def _onsets(out: str) -> dict[str, str]:
    advice = json.loads(out)
    return {f["kind"]: f["start"] for f in advice["findings"]}


def test_stdin_reads_the_same_as_the_file(incident: Path) -> None:
    """`scaler backtest -` reads the replay from a pipe and finds what the file gives."""
    flags = ["--instance-type", "m5.xlarge", "--format", "json"]
    from_file = subprocess.run(
        [sys.executable, "-m", "scaler", "backtest", str(incident), *flags],
        capture_output=True,
        text=True,
        check=True,
    )
    piped = subprocess.run(
        [sys.executable, "-m", "scaler", "backtest", "-", *flags],
        input=incident.read_text(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert _onsets(piped.stdout) == _onsets(from_file.stdout)
    assert "iowait_bound" in _onsets(piped.stdout)


def test_since_until_cut_the_window_and_the_throttle_disappears(
    incident: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cutting the window to end before the iowait_bound onset leaves no such finding."""
    assert main(["backtest", str(incident), "--format", "json"]) == EXIT_OK
    onset = _onsets(capsys.readouterr().out)["iowait_bound"]
    args = ["backtest", str(incident), "--since", "2026-03-02T09:00Z", "--format", "json"]
    assert main([*args, "--until", onset]) == EXIT_OK
    assert "iowait_bound" not in _onsets(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday': not a time"),
        (["--until", "2026-03-02T08:00"], "--until '2026-03-02T08:00' has no time zone"),
        (["--since", "2026-03-02T12:00Z", "--until", "2026-03-02T11:00Z"], "is not before"),
    ],
)
def test_bad_window_flags_exit_2(
    incident: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A time the flags cannot read is one line on stderr and exit 2."""
    assert main(["backtest", str(incident), *args]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_signal_warns_on_stderr_and_still_advises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt signal is a warning naming the closest known one; the run goes on."""
    path = tmp_path / "t.csv"
    path.write_text("timestamp,signal,value\n2026-03-02T08:00:00Z,cpu_usr,5\n")
    assert main(["backtest", str(path), "--format", "json"]) == EXIT_OK
    captured = capsys.readouterr()
    assert f"scaler: warning: {path}: unknown signal 'cpu_usr'" in captured.err
    assert "did you mean 'cpu_user'?" in captured.err
    json.loads(captured.out)


def test_a_year_of_empty_minutes_exits_2_and_suggests_a_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 399-day, 200-group file: exit 2 with the span and --since/--until, no MemoryError."""
    path = tmp_path / "wide.csv"
    rows = "".join(
        f"2025-01-01T00:00:00Z,cpu_user,1,g{g}\n2026-02-04T00:00:00Z,cpu_user,1,g{g}\n"
        for g in range(200)
    )
    path.write_text("timestamp,signal,value,group\n" + rows)
    assert main(["backtest", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"scaler: error: {path}: 200 group(s) from 2025-01-01")
    assert "--since and --until" in err
    code = main(["backtest", str(path), "--since", "2026-02-03T00:00Z", "--format", "json"])
    assert code == EXIT_OK


@pytest.mark.parametrize("minutes", [1, 2, 5])
def test_a_window_shorter_than_a_trend_bucket_is_judged_not_crashed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], minutes: int
) -> None:
    """A replay of a few minutes (the docs' worked example is two) prints advice, exit 0."""
    path = tmp_path / "short.csv"
    rows = "".join(
        f"2026-03-02T08:{m:02d}:00Z,{signal},{value}\n"
        for m in range(minutes)
        for signal, value in (("queue_visible", 875), ("instances", 8), ("cpu_user", 20))
    )
    path.write_text("timestamp,signal,value\n" + rows)
    assert main(["backtest", str(path), "--format", "json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_advice_held_at_max_size_keeps_saying_what_the_load_needs(
    incident: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Capped at max_size, the timeline goes on telling the growing need, and every line says
    the cap holds it (it used to end on '29 ×' while the plan climbed to 76)."""
    argv = ["backtest", str(incident), "--instance-type", "m5.xlarge", "--format", "json"]
    assert main([*argv, "--max-size", "30"]) == EXIT_OK
    recs = [r for r in json.loads(capsys.readouterr().out)["recommendations"] if r["evidence"]]
    held = [r for r in recs if r["evidence"].get("held_by") == "max_size"]
    assert len(held) >= 5 and all(r["desired_capacity"] == 30 for r in held)
    needs = [r["evidence"]["raw_desired"] for r in held]
    assert needs == sorted(needs) and needs[-1] > 60  # the story goes on while held
    last = recs[-1]
    assert last["evidence"]["held_by"] == "max_size"
    assert f"held at max_size; the load needs {needs[-1]}" in last["summary"]
    # Without the cap the same minutes advise the need itself, and no line says max_size.
    assert main([*argv, "--max-size", "200"]) == EXIT_OK
    uncapped = json.loads(capsys.readouterr().out)["recommendations"]
    assert not any("max_size" in r["summary"] for r in uncapped)
    # (its lines fall on other minutes: within the 10% tolerance of the last need told)
    assert max(r["desired_capacity"] or 0 for r in uncapped) >= 0.9 * needs[-1]


def test_values_no_fleet_can_have_are_missing_data_as_in_a_live_tick(
    incident: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CPU share of -5% or 500% is named on stderr and read as missing: the advice is what
    the file without those rows gives (it changed the advice before; the live tick dropped it)."""
    bad_rows = {
        "2026-03-02T09:06:00Z,cpu_user,": "-5",
        "2026-03-02T09:07:00Z,cpu_iowait,": "500",
    }
    lines = incident.read_text().splitlines()
    bad, clean = tmp_path / "bad.csv", tmp_path / "clean.csv"
    bad.write_text(
        "\n".join(
            next((p + v for p, v in bad_rows.items() if line.startswith(p)), line) for line in lines
        )
        + "\n"
    )
    clean.write_text(
        "\n".join(line for line in lines if not line.startswith(tuple(bad_rows))) + "\n"
    )
    flags = ["--instance-type", "m5.xlarge", "--format", "json"]
    assert main(["backtest", str(bad), *flags]) == EXIT_OK
    dropped = capsys.readouterr()
    assert main(["backtest", str(clean), *flags]) == EXIT_OK
    assert json.loads(dropped.out) == json.loads(capsys.readouterr().out)
    assert (
        f"scaler: warning: {bad}: group 'default': cpu_user read -5 at 09:06 UTC: outside "
        "what the fleet can have, ignored"
    ) in dropped.err
    assert "cpu_iowait read 500 at 09:07 UTC" in dropped.err
