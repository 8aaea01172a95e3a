"""`scaler simulate --scenario NAME|FILE`: scaling policies compared in a closed loop.

Each policy runs the same scenario (same seed: same arrivals, same measurement noise) with the
fleet and queue model of `scaler.sim`; the table (or JSON, or --plot PNG) compares what would
have happened had the fleet followed each one. Exit 0 ran; 2 bad input (scenario, flag).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from scaler.cli import EXIT_OK, commands
from scaler.errors import InputError
from scaler.fileio import png_path
from scaler.instances.catalog import bundled_catalog
from scaler.registry import UnknownNameError
from scaler.sim.loop import check_scaler, run_policies
from scaler.sim.policies import POLICY_NAMES, policies
from scaler.sim.report import SimulationReport, plot, render_text, summarize, to_json_dict
from scaler.sim.scenario import load_scenario, scenario_names

MAX_DAYS = 31


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument(
        "--scenario",
        required=True,
        help=f"a shipped scenario ({', '.join(scenario_names())}) or a scenario YAML file",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--policy", help=f"run one policy: {', '.join(POLICY_NAMES)}")
    which.add_argument("--compare", help="comma-separated policies to compare (default: all)")
    parser.add_argument("--days", type=float, help="run this many days instead of the scenario's")
    parser.add_argument("--seed", type=int, default=1, help="arrivals and noise seed (default 1)")
    parser.add_argument("--plot", type=Path, help="write timelines of every policy to this PNG")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    return _run


def _names(args: argparse.Namespace) -> list[str]:
    if args.policy:
        names = [args.policy]
    elif args.compare:
        names = [n.strip() for n in args.compare.split(",") if n.strip()]
    else:
        names = list(POLICY_NAMES)
    for name in names:
        try:
            policies.get(name)
        except UnknownNameError as exc:
            raise InputError(f"--{'policy' if args.policy else 'compare'}: {exc}") from None
    return names


def _run(args: argparse.Namespace) -> int:
    names = _names(args)
    minutes = None
    if args.days is not None:
        if not 0 < args.days <= MAX_DAYS:
            raise InputError(f"--days: {args.days:g} is outside (0, {MAX_DAYS}]")
        minutes = max(round(args.days * 1440), 30)
    if args.plot is not None:
        png_path(args.plot)  # before the runs, not after them
    scenario, rates = load_scenario(args.scenario, minutes=minutes)
    check_scaler(scenario, args.scenario)
    catalog = bundled_catalog()
    catalog.require(scenario.instance_type)
    runs = run_policies(scenario, rates, names, seed=args.seed, catalog=catalog)
    report = SimulationReport(
        scenario=scenario.name,
        page_threshold_s=scenario.page_threshold_s,
        results=[summarize(run, scenario) for run in runs],
    )
    if args.plot is not None:
        plot(runs, scenario, args.plot)  # written whole or not at all; errors name the file
        print(f"scaler: picture written to {args.plot}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(to_json_dict(report), indent=2))
    else:
        print(render_text(report, scenario))
    return EXIT_OK


commands.register("simulate")(
    ("compare scaling policies on a simulated fleet and queue, in a closed loop", _add)
)
