"""Pictures and the HTML report: the panels exist, spans are shaded, files open at their size."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scaler.backtest import Overrides, run_backtest
from scaler.cli import EXIT_BAD_INPUT, EXIT_OK, main
from scaler.cli.demo import incident_text
from scaler.policy import default_policy
from scaler.report import figure_for
from scaler.report.plot import PANELS, WIDTH_PX
from scaler.sources.replay import read_replay_text

# One worker runs the module, so its module-scoped fixture is made once.
pytestmark = pytest.mark.xdist_group("report")

M5 = Overrides(instance_type="m5.xlarge")


@pytest.fixture(scope="module")
def incident_figure() -> tuple[Any, Any]:
    windows = read_replay_text(incident_text())
    advice = run_backtest(windows, default_policy(), M5)
    return figure_for(windows["default"], advice, default_policy(), M5), advice


def test_every_panel_exists_in_order_with_units(incident_figure: tuple[Any, Any]) -> None:
    """Seven stacked panels share one UTC time axis; each data panel names its unit."""
    figure, _ = incident_figure
    axes = [ax for ax in figure.axes if ax.get_label() in PANELS]
    assert [ax.get_label() for ax in axes] == list(PANELS)
    assert all(axes[0].get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    units = {ax.get_label(): ax.get_ylabel() for ax in axes}
    assert units["arrivals vs throughput"] == "messages / min"
    assert units["EBS per instance"] == "MB/s"
    assert units["CPU"] == "% of CPU time"
    assert axes[-1].get_xlabel() == "time (UTC)"


def test_findings_are_shaded_on_every_panel_and_labelled(incident_figure: tuple[Any, Any]) -> None:
    """One shaded span and one onset line per finding on every data panel; lanes by kind."""
    figure, advice = incident_figure
    kinds = {f.kind for f in advice.findings}
    assert "iowait_bound" in kinds
    by_name = {ax.get_label(): ax for ax in figure.axes}
    lanes = [t.get_text().split("\n") for t in by_name["findings"].get_yticklabels()]
    assert sorted(lane[0] for lane in lanes) == sorted(kinds)
    onset = next(f.start for f in advice.findings if f.kind == "iowait_bound")
    assert ["iowait_bound", f"from {onset:%H:%M} (critical)"] in lanes  # the onset, in words
    for name in PANELS[1:]:
        ax = by_name[name]
        spans = [p for p in ax.patches if p.get_alpha() == pytest.approx(0.12)]
        assert len(spans) == len(advice.findings), name
        dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
        assert len(dashed) >= len(advice.findings), name
        assert {text.get_text() for text in ax.texts} >= kinds, name  # labelled by kind


def test_ebs_panel_draws_the_type_baseline_and_burst(incident_figure: tuple[Any, Any]) -> None:
    """The EBS panel's legend names the instance type's baseline and burst bandwidth."""
    figure, _ = incident_figure
    ebs = next(ax for ax in figure.axes if ax.get_label() == "EBS per instance")
    labels = ebs.get_legend_handles_labels()[1]
    assert "m5.xlarge baseline 143.75 MB/s" in labels
    assert "burst 593.75 MB/s" in labels


def test_backtest_plot_writes_a_png_of_the_expected_size(tmp_path: Path) -> None:
    """`scaler backtest FILE --plot out.png` as a user runs it: a PNG 1,600 px wide."""
    from PIL import Image

    replay = tmp_path / "incident.csv"
    replay.write_text(incident_text())
    out = tmp_path / "incident.png"
    done = subprocess.run(
        [sys.executable, "-m", "scaler", "backtest", str(replay), "--plot", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"picture written to {out}" in done.stderr
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (WIDTH_PX, 1900)
    # matplotlib is imported only when a picture is asked for.
    plain = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from scaler.cli import main; main(['backtest', sys.argv[1]]); "
            "print('matplotlib' in sys.modules)",
            str(replay),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stdout.strip().endswith("False")


def test_plot_to_a_non_png_name_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --plot path that is not .png is bad input, not a traceback."""
    replay = tmp_path / "incident.csv"
    replay.write_text(incident_text())
    assert main(["backtest", str(replay), "--plot", str(tmp_path / "x.jpg")]) == EXIT_BAD_INPUT
    assert "name it ending in .png" in capsys.readouterr().err


def test_report_is_one_self_contained_html_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scaler report`: the picture inline, the findings and the advice timeline, no URLs."""
    replay = tmp_path / "incident.csv"
    replay.write_text(incident_text())
    out = tmp_path / "report.html"
    assert main(["report", str(replay), "--instance-type", "m5.xlarge", "-o", str(out)]) == EXIT_OK
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert re.search(r'<img [^>]*src="data:image/png;base64,', page)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "iowait_bound" in page and "Advice timeline" in page
    assert f"report written to {out}" in capsys.readouterr().err


def test_demo_prints_the_path_of_the_incident_picture(capsys: pytest.CaptureFixture[str]) -> None:
    """`scaler demo` (what `make demo` runs) draws the throttle first and says where."""
    from PIL import Image

    assert main(["demo"]) == EXIT_OK
    out = capsys.readouterr().out
    found = re.search(r"^The incident as a picture: (\S+\.png)$", out, re.MULTILINE)
    assert found, out[:500]
    assert out.index(found.group(0)) < out.index("== tick at")
    with Image.open(found.group(1)) as image:
        assert image.size == (WIDTH_PX, 1900)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["report", "{trace}", "-o", "{out}.txt"], "-o {out}.txt: the report is one HTML file"),
        (["backtest", "{trace}", "--plot", "{out}.jpg"], "--plot {out}.jpg: the picture is a PNG"),
    ],
)
def test_an_output_named_for_another_format_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    """inputs: a command whose output file has the wrong suffix; expected: exit 2, one line
    naming the flag and the fix, and no file written."""
    trace = tmp_path / "incident.csv"
    trace.write_text(incident_text())
    out = tmp_path / "out"
    fill = {"trace": str(trace), "out": str(out)}
    assert main([a.format(**fill) for a in argv]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().startswith(f"scaler: error: {says.format(**fill)}")
    assert list(tmp_path.iterdir()) == [trace]
