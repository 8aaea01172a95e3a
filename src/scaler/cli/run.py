"""`scaler run --policy FILE [--apply] [--every 60s]`: the tick that may act.

Exit codes of `run`: 0 every group was read, decided and recorded (a rail holding an action
back is a decision); 1 a group could not be read or decided, an AWS call failed or its outcome
is unknown, or the tick was stopped before every group was decided; 2 bad input (policy,
flags, state location). With `--every` the loop keeps going after a failed tick and exits 0
when stopped by SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from scaler.cli import EXIT_FAILED, EXIT_OK, commands
from scaler.cli.common import add_aws_arguments, clients_from, now
from scaler.cli.views import render_report
from scaler.control import open_store
from scaler.controller import TickReport, run_tick
from scaler.loop import parse_interval, run_every
from scaler.policy import load_policy

__all__: list[str] = []


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An Event set by SIGTERM or SIGINT, with the previous handlers restored afterwards."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _add_run(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--policy", required=True, help="policy YAML naming the groups")
    parser.add_argument(
        "--apply",
        action="store_true",
        help="act within the rails (default: dry-run, unless the policy says mode: apply)",
    )
    parser.add_argument("--every", help="run a tick every interval (60, 60s, 5m) until stopped")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    add_aws_arguments(parser)
    return _run


def _run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    every = parse_interval(args.every) if args.every else None
    clients = clients_from(args)
    store = open_store(policy.state, dynamodb=clients.dynamodb)
    try:
        with _stop_on_signals() as stop:

            def tick() -> bool:
                report = run_tick(
                    policy, clients, store, now=now(args), apply=args.apply, stop=stop
                )
                _print(report, args.format, compact=every is not None)
                return report.ok

            if every is None:
                return EXIT_OK if tick() else EXIT_FAILED
            run_every(tick, every, stop)
            return EXIT_OK
    finally:
        store.close()


def _print(report: TickReport, fmt: str, *, compact: bool) -> None:
    if fmt == "json":
        print(report.model_dump_json(indent=None if compact else 2), flush=True)
    else:
        print(render_report(report) + ("\n" if compact else ""), flush=True)


commands.register("run")(("tick: advise, then act within the rails with --apply", _add_run))
