"""`scaler simulate` as a user runs it: the incident's JSON and plot, text, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scaler.cli import main

# One worker runs the module, so its module-scoped fixture is made once.
pytestmark = pytest.mark.xdist_group("simulate_cli")

POLICIES = [
    "cpu-target-75",
    "cpu-target-60",
    "backlog-per-instance",
    "step-queue",
    "keda-queue-length",
    "fixed",
    "scaler",
    "scaler+type",
    "oracle",
]
FIELDS = [
    "policy",
    "peak_backlog",
    "peak_age_s",
    "p95_age_s",
    "minutes_over_page",
    "drain_minutes",
    "instance_hours",
    "cost_usd",
    "actions",
    "reversals",
]


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Every policy on the incident, as JSON, with a plot (one run for the module)."""
    png = tmp_path_factory.mktemp("plot") / "incident.png"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "scaler",
            "simulate",
            "--scenario",
            "incident",
            "--format",
            "json",
            "--plot",
            str(png),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), png


def test_the_json_has_the_issues_shape(incident: tuple[dict[str, Any], Path]) -> None:
    doc, _ = incident
    assert list(doc) == ["scenario", "page_threshold_s", "results"]
    assert doc["scenario"] == "incident"
    assert doc["page_threshold_s"] == 7200
    assert [r["policy"] for r in doc["results"]] == POLICIES
    for result in doc["results"]:
        assert list(result) == FIELDS


def test_the_incident_meets_its_targets(incident: tuple[dict[str, Any], Path]) -> None:
    doc, _ = incident
    by = {r["policy"]: r for r in doc["results"]}
    cpu, scaler, typed, oracle = by["cpu-target-60"], by["scaler"], by["scaler+type"], by["oracle"]
    # CPU target tracking reproduces the incident: the backlog grows, the fleet never scales.
    assert cpu["actions"] == 0
    assert cpu["minutes_over_page"] > 60
    assert cpu["peak_backlog"] > 100_000
    # scaler: zero minutes over the page (or 90% fewer) within 1.25x the oracle's hours.
    assert scaler["minutes_over_page"] <= 0.1 * cpu["minutes_over_page"]
    assert scaler["instance_hours"] <= 1.25 * oracle["instance_hours"]
    # the type change (m5d, hot I/O on NVMe) costs less than more of the same type
    assert typed["cost_usd"] < scaler["cost_usd"]
    assert typed["minutes_over_page"] == 0


def test_the_plot_is_a_png(incident: tuple[dict[str, Any], Path]) -> None:
    _, png = incident
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_matplotlib_is_imported_only_to_plot() -> None:
    code = (
        "import sys\n"
        "from scaler.cli import main\n"
        "main(['simulate', '--scenario', 'flash-crowd', '--compare', 'fixed,oracle',"
        " '--format', 'json'])\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported without --plot'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_text_prints_the_table_and_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "--scenario",
            "incident",
            "--compare",
            "cpu-target-60,fixed,oracle",
            "--days",
            "0.3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("scenario incident:")
    assert "peak backlog" in lines[1]
    assert [line.split()[0] for line in lines[3:6]] == ["cpu-target-60", "fixed", "oracle"]
    assert "cpu-target-60 reproduces the incident (backlog grows, no scale-out): met" in out


def test_one_policy_with_a_seed_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--scenario", "flash-crowd", "--policy", "step-queue", "--format", "json"]
    assert main([*args, "--seed", "4"]) == 0
    first = capsys.readouterr().out
    assert main([*args, "--seed", "4"]) == 0
    assert capsys.readouterr().out == first
    assert main([*args, "--seed", "5"]) == 0
    assert capsys.readouterr().out != first


BAD_SCENARIOS = [
    # (YAML, what the error must name)
    (
        "name: x\nminutes: 100\narrivals: {kind: constant, rate: 10}\n"
        "fleet: {desired: 2, min_sise: 1}\n",
        "fleet.min_sise",
    ),
    (
        "name: x\nminutes: 100\narrivals: {kind: constant, rate: -1}\nfleet: {desired: 2}\n",
        "arrivals.rate",
    ),
    (
        "name: x\nminutes: 100\narrivals: {kind: poisson, rate: 10}\nfleet: {desired: 2}\n",
        "arrivals",
    ),
    (
        "name: x\nminutes: 100\narrivals: {kind: constant, rate: 10}\nfleet: {desired: 2}\n"
        "scaler: {rails: {cooldown_seconds: -5}}\n",
        "scaler.rails.cooldown_seconds",
    ),
    (
        "name: x\nminutes: 100\narrivals: {kind: constant, rate: 10}\nfleet: {desired: 2}\n"
        "instance_type: m5.huge\n",
        "m5.huge",
    ),
]


@pytest.mark.parametrize(("text", "field"), BAD_SCENARIOS)
def test_a_bad_scenario_file_names_the_file_and_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, field: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code = main(["simulate", "--scenario", str(path), "--policy", "fixed"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err or "m5.huge" in err
    assert field in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--scenario", "incident", "--policy", "hpa"], "unknown policy 'hpa'; valid:"),
        (["--scenario", "black-friday"], "unknown scenario 'black-friday'; valid: diurnal-week"),
        (["--scenario", "incident", "--days", "40"], "--days: 40 is outside"),
    ],
)
def test_bad_flags_are_input_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(["simulate", *args]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("name", ["incident", "diurnal-week", "flash-crowd", "slow-ramp"])
def test_every_shipped_scenario_runs(capsys: pytest.CaptureFixture[str], name: str) -> None:
    args = ["simulate", "--scenario", name, "--compare", "fixed,oracle", "--days", "0.05"]
    assert main([*args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scenario"] == name
    assert [r["policy"] for r in doc["results"]] == ["fixed", "oracle"]


def test_the_documented_scenario_file_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "simulate.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "my-fleet.yaml"
    path.write_text(example)
    assert main(["simulate", "--scenario", str(path), "--policy", "oracle"]) == 0
    assert capsys.readouterr().out.startswith("scenario my-fleet: our nightly batch (12 h,")


def test_the_readme_shows_what_the_incident_simulation_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's table is the command's output today, not an older model's."""
    assert main(["simulate", "--scenario", "incident"]) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"```\n{printed}\n```" in readme


def test_a_plot_that_is_not_a_png_is_refused_before_the_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `backtest --plot`: the picture is a PNG; said at once, exit 2, nothing written."""
    jpg = tmp_path / "week.jpg"
    assert main(["simulate", "--scenario", "diurnal-week", "--plot", str(jpg)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"scaler: error: --plot {jpg}: the picture is a PNG; name it ending in .png"
    )
    assert not jpg.exists()
