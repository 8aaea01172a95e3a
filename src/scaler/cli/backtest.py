"""`scaler backtest FILE`: replay a recorded window through the rules and advice."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pydantic import ValidationError

from scaler.backtest import Overrides, run_backtest
from scaler.cli import EXIT_OK, commands
from scaler.errors import InputError
from scaler.policy import default_policy, load_policy
from scaler.render import render_json, render_text
from scaler.sources.replay import read_replay


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by commands that advise on a window."""
    parser.add_argument("--policy", help="policy YAML (default: one group, every default)")
    parser.add_argument("--instance-type", help="instance type of the fleet, e.g. m5.xlarge")
    parser.add_argument("--min-size", type=int, help="never advise below this many instances")
    parser.add_argument("--max-size", type=int, help="never advise above this many instances")
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


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("file", help="replay CSV (timestamp,signal,value[,group]); see SIGNALS.md")
    add_common_arguments(parser)
    return _run


def _run(args: argparse.Namespace) -> int:
    overrides = overrides_from(args)
    policy = load_policy(args.policy) if args.policy else default_policy()
    windows = read_replay(args.file)
    advice = run_backtest(windows, policy, overrides)
    if args.format == "json":
        print(render_json(advice))
    else:
        spans = ", ".join(
            f"{w.group} {w.start:%Y-%m-%d %H:%M} -> {w.end:%H:%M} UTC ({w.length} min)"
            for w in windows.values()
        )
        print(render_text(advice, f"scaler backtest {args.file}: {spans}"))
    return EXIT_OK


commands.register("backtest")(("replay a recorded window and print findings and advice", _add))
