"""`scaler report FILE -o report.html`: a backtest as one self-contained HTML file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from scaler.cli import EXIT_OK, commands
from scaler.cli.backtest import add_fleet_arguments, add_replay_arguments, replay_from_args
from scaler.fileio import html_path, write_atomically

__all__: list[str] = []


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    add_replay_arguments(parser)
    add_fleet_arguments(parser)
    parser.add_argument(
        "-o", "--output", required=True, metavar="HTML", help="where to write the report"
    )
    return _run


def _run(args: argparse.Namespace) -> int:
    from scaler.report.html import render_html

    target = html_path(Path(args.output))  # before the backtest, not after it
    r = replay_from_args(args)
    source = "stdin" if args.file == "-" else Path(args.file).name
    page = render_html(r.windows, r.advice, r.policy, r.overrides, source).encode("utf-8")
    write_atomically(target, lambda stream: stream.write(page))
    print(f"scaler: report written to {target}", file=sys.stderr)
    return EXIT_OK


commands.register("report")(("a backtest as one self-contained HTML file (plots, advice)", _add))
