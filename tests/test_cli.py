"""The command line: exit codes, JSON on stdout alone, errors on stderr that say what to fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scaler.cli import EXIT_BAD_INPUT, EXIT_OK, main

ROOT = Path(__file__).parent.parent


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text("timestamp,signal,value\n" + body)
    return path


def test_backtest_json_is_one_object_with_the_contract_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--format json` prints exactly one JSON object with findings and recommendations."""
    rows = "".join(
        f"2026-03-02T08:{m:02d}:00Z,queue_visible,0\n2026-03-02T08:{m:02d}:00Z,instances,4\n"
        for m in range(10)
    )
    code = main(["backtest", str(_csv(tmp_path, rows)), "--format", "json"])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    advice = json.loads(out)
    assert set(advice) >= {"findings", "recommendations"}
    assert advice["findings"] == []
    # Without arrivals or throughput, rules that need them say so instead of guessing.
    missing = {u["kind"]: u["missing"] for u in advice["unevaluated"]}
    assert missing["iowait_bound"] == ["cpu_user", "cpu_iowait"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-size", "5", "--max-size", "2"], "--min-size 5 is above --max-size 2"),
        (["--instance-type", "m5.huge"], "instance type 'm5.huge' is not in the instance catalog"),
        (["--min-size", "-1"], "--min-size: Input should be greater than or equal to 0"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Bad command-line values exit 2 with a message that names the flag."""
    path = _csv(tmp_path, "2026-03-02T08:00:00Z,queue_visible,0\n")
    assert main(["backtest", str(path), *args]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_corrupt_replay_exits_2_and_prints_nothing_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad row exits 2, names file and line on stderr, and prints no partial advice."""
    path = _csv(
        tmp_path, "2026-03-02T08:00:00Z,queue_visible,0\n2026-03-02T08:01:00Z,queue_visible,x\n"
    )
    assert main(["backtest", str(path), "--format", "json"]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}: line 3: value 'x' is not a number" in captured.err


def test_policy_schema_and_validate(capsys: pytest.CaptureFixture[str]) -> None:
    """`policy schema` prints JSON Schema; `policy validate` summarizes a good file."""
    assert main(["policy", "schema"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["title"] == "Policy"
    assert main(["policy", "validate", str(ROOT / "policies" / "crash-processor.yaml")]) == EXIT_OK
    assert "valid policy" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_cli() -> None:
    """`python -m scaler --help` works and lists the commands."""
    result = subprocess.run(
        [sys.executable, "-m", "scaler", "--help"], capture_output=True, text=True, check=True
    )
    assert "backtest" in result.stdout
    assert "policy" in result.stdout
