"""`scaler demo`: the main job on an embedded default, with no AWS account."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import resources

from scaler.backtest import Overrides, run_backtest
from scaler.cli import EXIT_OK, commands
from scaler.policy import default_policy
from scaler.render import render_json, render_text
from scaler.sources.replay import read_replay_text

INCIDENT = "incident-m5xlarge.csv"
DEMO_OVERRIDES = Overrides(instance_type="m5.xlarge", min_size=2, max_size=40)


def incident_text() -> str:
    """The bundled incident trace (from the physical model in scaler.sim)."""
    return (resources.files("scaler") / "data" / INCIDENT).read_text(encoding="utf-8")


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--format", choices=["text", "json"], default="text")
    return _run


def _run(args: argparse.Namespace) -> int:
    windows = read_replay_text(incident_text(), INCIDENT)
    advice = run_backtest(windows, default_policy(), DEMO_OVERRIDES)
    if args.format == "json":
        print(render_json(advice))
    else:
        print(
            render_text(
                advice, f"scaler demo: backtest of the bundled {INCIDENT} (m5.xlarge, 8 instances)"
            )
        )
    return EXIT_OK


commands.register("demo")(("diagnose a bundled incident (no AWS account needed)", _add))
