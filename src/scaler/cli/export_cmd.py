"""`scaler export`: a window of a policy's signals from CloudWatch into a replay file."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from scaler.cli import EXIT_OK, commands
from scaler.cli.common import add_aws_arguments, clients_from
from scaler.cli.times import accept_relative_times, parse_when
from scaler.errors import InputError
from scaler.export import FORMATS, ExportPlan, ExportSummary, export_window, plan_export
from scaler.fileio import write_atomically
from scaler.models import Place
from scaler.policy import GroupPolicy, Policy, load_policy
from scaler.sources.cloudwatch import CloudWatchSource

__all__: list[str] = []


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--policy", required=True, help="policy YAML naming the groups")
    parser.add_argument(
        "--group", action="append", help="export only this group (repeat for several)"
    )
    parser.add_argument(
        "--start", required=True, help="first minute: ISO 8601 with a zone, or -6h, -2d"
    )
    parser.add_argument("--end", default="now", help="end (exclusive): same forms, or now")
    parser.add_argument("-o", "--output", help="replay file to write (default: stdout)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="csv or parquet (default: from the -o suffix, else csv)",
    )
    add_aws_arguments(parser)
    accept_relative_times(parser)
    return _run


def _groups(policy: Policy, wanted: list[str] | None) -> list[GroupPolicy]:
    if not wanted:
        return list(policy.groups)
    unknown = [g for g in wanted if g not in policy.names()]
    if unknown:
        raise InputError(
            f"--group {unknown[0]!r} is not in the policy; its groups: {', '.join(policy.names())}"
        )
    return [g for g in policy.groups if g.name in wanted]


def _here_only(groups: list[GroupPolicy]) -> None:
    """Export reads with scaler's own credentials and region: a group elsewhere is refused,
    never read in the wrong account."""
    for group in groups:
        if group.place != Place():
            raise InputError(
                f"group {group.name!r} is in {group.place}: scaler export reads only scaler's "
                "own account and region; run it with that account's credentials (--profile, "
                "--region) and a policy without account:/region:, or leave the group out "
                "with --group"
            )


def _run(args: argparse.Namespace) -> int:
    now: datetime = args.clock()
    policy = load_policy(args.policy)
    groups = _groups(policy, args.group)
    _here_only(groups)
    start = parse_when(args.start, "--start", now=now)
    end = parse_when(args.end, "--end", now=now)
    file_format = args.format or (
        "parquet" if args.output and args.output.endswith(".parquet") else "csv"
    )
    if file_format == "parquet" and not args.output and sys.stdout.isatty():
        raise InputError("--format parquet is binary: name a file with -o, or pipe stdout")
    plan = plan_export(groups, start=start, end=end, now=now)
    _say_plan(plan)
    source = CloudWatchSource(
        clients_from(args).cloudwatch, max_queries_per_call=plan.queries_per_call
    )
    summary: ExportSummary | None = None

    def write(stream: BinaryIO) -> None:
        nonlocal summary
        with _progress(len(plan.slices)) as step:
            summary = export_window(source, plan, stream, file_format=file_format, on_slice=step)

    if args.output:
        write_atomically(Path(args.output), write)
    else:
        write(sys.stdout.buffer)
        sys.stdout.flush()
    assert summary is not None
    where = args.output or "stdout"
    print(
        f"scaler export: wrote {summary.datapoints:,} datapoints of "
        f"{len(summary.per_signal)} signals to {where} ({file_format}) in {summary.calls} "
        f"GetMetricData call(s); the fewest possible: {plan.min_calls}",
        file=sys.stderr,
    )
    missing = sorted({s for t in plan.targets for s in t.metrics} - set(summary.per_signal))
    if missing:
        print(
            f"scaler export: no datapoints in CloudWatch for {', '.join(missing)} "
            "(absent from the file; rules that need them will say so)",
            file=sys.stderr,
        )
    return EXIT_OK


def _say_plan(plan: ExportPlan) -> None:
    hours = (plan.end - plan.start).total_seconds() / 3600
    names = ", ".join(t.group for t in plan.targets)
    print(
        f"scaler export: {names}, {plan.start:%Y-%m-%dT%H:%MZ} to {plan.end:%Y-%m-%dT%H:%MZ} "
        f"({hours:,.1f} h): {plan.resolution_s // 60}-minute data, the finest CloudWatch "
        f"keeps for that age",
        file=sys.stderr,
    )
    coarser = {s: p for s, p in plan.periods().items() if p != plan.resolution_s}
    for signal, period in sorted(coarser.items()):
        print(f"  {signal}: {period // 60}-minute data (its metric's period)", file=sys.stderr)


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when it is a terminal and the export takes several calls."""
    if total < 2 or not sys.stderr.isatty():
        yield lambda: None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="call", desc="export", file=sys.stderr, leave=False) as bar:
        yield lambda: bar.update(1)


commands.register("export")(("read a window of CloudWatch into a replay file", _add))
