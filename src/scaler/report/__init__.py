"""Pictures and reports of a backtest: PNG panels per group, and one self-contained HTML file.

Called by `scaler backtest --plot`, `scaler report` and `scaler demo`. Reads windows and the
advice already computed; computes nothing new, so the picture shows exactly what was said.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from scaler.backtest import Overrides, group_policy_for
from scaler.fileio import png_path, write_atomically
from scaler.instances.catalog import InstanceFacts
from scaler.models import Advice
from scaler.policy import Policy
from scaler.signals import Window

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DEMO_PICTURE", "figure_for", "picture_of", "plot_advice"]


def figure_for(
    window: Window, advice: Advice, policy: Policy, overrides: Overrides | None = None
) -> Figure:
    """The stacked-panel figure of one group's window and its findings and advice."""
    from scaler.report.plot import draw_window

    overrides = overrides or Overrides()
    facts = _facts(window.group, policy, overrides)
    findings = [f for f in advice.findings if f.group == window.group]
    recommendations = [r for r in advice.recommendations if r.group == window.group]
    kind = f" ({facts.instance_type})" if facts else ""
    clock = "%H:%M" if window.length <= 1440 else "%m-%d %H:%M"  # a date once it is needed
    onsets = {f.kind: f for f in sorted(findings, key=lambda f: f.start, reverse=True)}
    story = "; ".join(
        f"{f.kind} from {f.start.strftime(clock)} ({f.severity.value})"
        for f in sorted(onsets.values(), key=lambda f: f.start)
    )
    title = (
        f"{window.group}{kind}, {window.start:%Y-%m-%d %H:%M} to "
        f"{window.time_at(window.length):%Y-%m-%d %H:%M} UTC\n{story or 'no findings'}"
    )
    return draw_window(window, findings, recommendations, facts, title)


def plot_advice(
    windows: Mapping[str, Window],
    advice: Advice,
    policy: Policy,
    overrides: Overrides | None,
    path: str | Path,
) -> list[Path]:
    """Write one PNG per group (`out.png`, or `out-<group>.png` for several); their paths."""
    path = Path(path)
    png_path(path)
    written = []
    for name, window in windows.items():
        target = path if len(windows) == 1 else path.with_name(f"{path.stem}-{name}.png")
        figure = figure_for(window, advice, policy, overrides)
        write_atomically(target, lambda stream: figure.savefig(stream, format="png"))  # noqa: B023
        written.append(target)
    return written


#: Where `scaler demo` draws the incident: outside the working tree, the same path every run.
DEMO_PICTURE = Path(tempfile.gettempdir()) / "scaler-demo" / "incident.png"


def picture_of(
    window: Window, policy: Policy, overrides: Overrides | None, path: Path = DEMO_PICTURE
) -> Path:
    """Backtest one window and draw it to `path` (the demo's picture); returns the path."""
    from scaler.backtest import run_backtest

    path.parent.mkdir(parents=True, exist_ok=True)
    windows = {window.group: window}
    return plot_advice(windows, run_backtest(windows, policy, overrides), policy, overrides, path)[
        0
    ]


def _facts(group: str, policy: Policy, overrides: Overrides) -> InstanceFacts | None:
    instance_type = overrides.instance_type or group_policy_for(policy, group).instance_type
    return policy.catalog().get(instance_type) if instance_type else None
