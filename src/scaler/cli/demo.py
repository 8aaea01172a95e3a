"""`scaler demo`: the main job on an embedded AWS, with no account.

A moto server starts in this process; a launch template (m5.xlarge), an Auto Scaling group and
an SQS queue are created in it, and six hours of the incident from the physical fleet model are
written to its CloudWatch (healthy load, a surge on EBS burst credits, then the throttle). Then
the same code as `scaler advise` reads it back over HTTP through boto3 and advises, twice: half
an hour before the throttle, and minutes after it. With `--serve`, the seeded local AWS keeps
running instead, for every other command (scaler.demo.serve).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from importlib import resources

from scaler.aws import make_clients
from scaler.backtest import Overrides, run_backtest
from scaler.cli import EXIT_FAILED, EXIT_OK, commands
from scaler.cli.common import now
from scaler.cli.views import render_tick
from scaler.demo.embedded import local_aws, local_session
from scaler.demo.incident import DEMO_POLICY, seed_demo_incident
from scaler.demo.serve import serve
from scaler.errors import InputError
from scaler.live import advise
from scaler.policy import default_policy
from scaler.render import render_json, render_text
from scaler.sim import scenarios
from scaler.sources.replay import read_replay_text

__all__ = ["DEMO_POLICY", "incident_text"]

INCIDENT = "incident-m5xlarge.csv"
DEMO_OVERRIDES = Overrides(instance_type="m5.xlarge", min_size=2, max_size=40)
#: When the demo's two ticks run, relative to the throttle's onset in the trace.
TICKS = (timedelta(minutes=-30), timedelta(minutes=8))


def incident_text() -> str:
    """The bundled incident trace (from the physical model in scaler.sim)."""
    return (resources.files("scaler") / "data" / INCIDENT).read_text(encoding="utf-8")


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json prints the last tick's advice (the SIGNALS.md shape)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the seeded local AWS running and print commands to try against it",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="with --serve: the local AWS's port (default: free)"
    )
    parser.add_argument(
        "--backtest",
        action="store_true",
        help="replay the bundled incident CSV offline instead (no moto server)",
    )
    return _run


def _run(args: argparse.Namespace) -> int:
    if args.serve:
        return _serve(args.port)
    return _backtest(args.format) if args.backtest else _live(args)


def _serve(port: int) -> int:
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: a port is 0 (a free one) to 65535")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C: the with-blocks inside serve() stop the server and remove the files.
    with contextlib.suppress(KeyboardInterrupt):
        serve(port=port, stop=stop, out=sys.stdout)
    return EXIT_OK


def _live(args: argparse.Namespace) -> int:
    fmt = args.format
    with local_aws() as server:
        server.reset()  # moto keeps state per process: start from an empty account
        clients = make_clients(local_session(), endpoint_url=server.endpoint_url)
        demo = seed_demo_incident(clients, now(args))
        seeded = demo.seeded
        if fmt == "text":
            print(
                f"scaler demo: a local AWS at {server.endpoint_url} (moto server) holds ASG "
                f"{seeded.asg_name} (m5.xlarge launch template), queue {seeded.queue_name}, and "
                f"{seeded.datapoints:,} CloudWatch datapoints ({seeded.put_calls} PutMetricData "
                f"calls): 6 hours of a crash-report fleet whose EBS burst runs out at "
                f"{demo.onset:%H:%M} UTC.\n"
            )
        ticks = [
            advise(DEMO_POLICY, clients, now=demo.onset + offset + _ONE_MINUTE) for offset in TICKS
        ]
    if fmt == "json":
        print(render_json(ticks[-1].advice()))
    else:
        from scaler.report import picture_of  # matplotlib only when a picture is drawn

        trace = scenarios.incident()
        moved = trace.window.model_copy(
            update={
                "start": trace.window.start + demo.shift,
                "group": DEMO_POLICY.groups[0].name,
            }
        )
        print(f"The incident as a picture: {picture_of(moved, DEMO_POLICY, DEMO_OVERRIDES)}\n")
        for offset, tick in zip(TICKS, ticks, strict=True):
            when = "before" if offset < timedelta(0) else "after"
            minutes = abs(int(offset.total_seconds() // 60))
            title = f"== tick at {tick.at:%H:%M} UTC, {minutes} min {when} the throttle =="
            print(render_tick(tick, title) + "\n")
    return EXIT_FAILED if any(t.errors for t in ticks) else EXIT_OK


# A tick reads complete minutes before its own; one minute later it sees the minute named.
_ONE_MINUTE = timedelta(minutes=1)


def _backtest(fmt: str) -> int:
    windows = read_replay_text(incident_text(), INCIDENT)
    advice = run_backtest(windows, default_policy(), DEMO_OVERRIDES)
    if fmt == "json":
        print(render_json(advice))
    else:
        print(
            render_text(
                advice, f"scaler demo: backtest of the bundled {INCIDENT} (m5.xlarge, 8 instances)"
            )
        )
    return EXIT_OK


commands.register("demo")(("diagnose a seeded incident on an embedded AWS (no account)", _add))
