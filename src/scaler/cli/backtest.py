"""`scaler backtest FILE`: replay a recorded window through the rules and advice (and draw it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from scaler.backtest import Overrides, run_backtest
from scaler.cli import EXIT_OK, commands
from scaler.cli.times import accept_relative_times, parse_when
from scaler.errors import InputError
from scaler.models import Advice
from scaler.policy import Policy, default_policy, load_policy
from scaler.render import render_json, render_text
from scaler.signals import Window
from scaler.sources.replay import read_replay

__all__ = [
    "Replayed",
    "add_common_arguments",
    "add_fleet_arguments",
    "add_replay_arguments",
    "overrides_from",
    "read_replay_args",
    "replay_from_args",
]


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """The policy and the fleet facts that win over it (backtest, report)."""
    parser.add_argument("--policy", help="policy YAML (default: one group, every default)")
    parser.add_argument("--instance-type", help="instance type of the fleet, e.g. m5.xlarge")
    parser.add_argument("--min-size", type=int, help="never advise below this many instances")
    parser.add_argument("--max-size", type=int, help="never advise above this many instances")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by commands that advise on a window and print the advice."""
    add_fleet_arguments(parser)
    parser.add_argument("--format", choices=["text", "json"], default="text")


def overrides_from(args: argparse.Namespace) -> Overrides:
    """Overrides from the command line, with errors that name the flag."""
    try:
        return Overrides(
            instance_type=args.instance_type, min_size=args.min_size, max_size=args.max_size
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise InputError(problems) from None


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """The replay file and the window cut from it (backtest, report)."""
    parser.add_argument(
        "file",
        help="replay file: CSV (timestamp,signal,value[,group]) or .parquet; - reads stdin; "
        "see docs/replay-format.md",
    )
    parser.add_argument(
        "--since", help="keep minutes from this time on (ISO 8601 with a zone, -6h, now)"
    )
    parser.add_argument("--until", help="keep minutes before this time (same forms as --since)")
    accept_relative_times(parser)


def read_replay_args(args: argparse.Namespace) -> dict[str, Window]:
    """The windows the replay flags name; warnings about the file go to stderr."""
    now = args.clock()
    since = parse_when(args.since, "--since", now=now) if args.since else None
    until = parse_when(args.until, "--until", now=now) if args.until else None
    return read_replay(args.file, since=since, until=until, warn=_print_warning)


def _print_warning(message: str) -> None:
    print(f"scaler: warning: {message}", file=sys.stderr)


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    add_replay_arguments(parser)
    add_common_arguments(parser)
    parser.add_argument(
        "--plot",
        metavar="PNG",
        help="also draw the window and its findings as stacked panels (UTC) in this PNG",
    )
    return _run


@dataclass(frozen=True)
class Replayed:
    """A replay file read and backtested as the flags say (backtest, report)."""

    windows: dict[str, Window]
    policy: Policy
    overrides: Overrides
    advice: Advice


def replay_from_args(args: argparse.Namespace) -> Replayed:
    """Read the replay the flags name and backtest it with their policy and overrides."""
    overrides = overrides_from(args)
    policy = load_policy(args.policy) if args.policy else default_policy()
    windows = read_replay_args(args)
    try:
        advice = run_backtest(
            windows, policy, overrides, warn=lambda note: _print_warning(f"{args.file}: {note}")
        )
    except InputError as exc:  # about the replay's content: say which file
        raise InputError(f"{args.file}: {exc}") from exc
    return Replayed(windows, policy, overrides, advice)


def _run(args: argparse.Namespace) -> int:
    replayed = replay_from_args(args)
    windows, policy, overrides, advice = (
        replayed.windows,
        replayed.policy,
        replayed.overrides,
        replayed.advice,
    )
    if args.plot:
        from scaler.report import plot_advice

        for path in plot_advice(windows, advice, policy, overrides, args.plot):
            print(f"scaler: picture written to {path}", file=sys.stderr)
    if args.format == "json":
        print(render_json(advice))
    else:
        spans = ", ".join(
            f"{w.group} {w.start:%Y-%m-%d %H:%M} -> "
            f"{w.end:{'%H:%M' if w.end.date() == w.start.date() else '%Y-%m-%d %H:%M'}} UTC "
            f"({w.length:,} min)"
            for w in windows.values()
        )
        print(render_text(advice, f"scaler backtest {args.file}: {spans}"))
    return EXIT_OK


commands.register("backtest")(("replay a recorded window and print findings and advice", _add))
