"""`make bench`: figures for the README, printed, not asserted (no timed tests)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.cold_start import cold_start_figures
from bench.cost import cost_figures
from bench.live_tick import live_tick_figures
from bench.simulate import simulate_figures
from bench.stub_tick import scale_figures_apart
from scaler.backtest import Overrides, evaluate_windows, run_backtest
from scaler.logs import configure_logging
from scaler.policy import default_policy
from scaler.sim import scenarios
from scaler.sim.replay_csv import write_replay
from scaler.sources.replay import read_replay

OVERRIDES = Overrides(instance_type="m5.xlarge", min_size=2, max_size=40)
_FLEET_FLAGS = ("--instance-type", "m5.xlarge", "--min-size", "2", "--max-size", "40")


def _best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _month_files(tmp: Path) -> tuple[Path, Path, int, int]:
    """The 30-day replay as CSV and as Parquet; its datapoint and signal counts."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    month = scenarios.month(30)
    csv_path, parquet_path = tmp / "month.csv", tmp / "month.parquet"
    with csv_path.open("w") as stream:
        points = write_replay([month.window], stream)
    # As `scaler export` writes it: UTC timestamps, signal names dictionary-encoded.
    table = pacsv.read_csv(csv_path)
    table = table.set_column(1, "signal", table.column("signal").dictionary_encode())
    pq.write_table(table, parquet_path)
    return csv_path, parquet_path, points, len(month.window.series)


def _pandas_read_and_pivot(path: Path) -> object:
    import pandas as pd

    frame = pd.read_csv(path, engine="pyarrow")
    return frame.pivot(index="timestamp", columns="signal", values="value")


_PANDAS_COMMAND = """
import sys
import pandas as pd
frame = pd.read_csv(sys.argv[1], engine="pyarrow")
frame.pivot(index="timestamp", columns="signal", values="value")
"""

# As an installed package runs: with its compiled bytecode (pip writes it at install; this
# checkout's bytecode is written by the warm-up run even where the environment says not to).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# The `scaler` executable's own function, with its peak memory said as the process ends:
# VmHWM is this process's own high-water mark (rusage's maxrss would carry the forking
# parent's across exec).
_COMMAND = """
import atexit, sys
from scaler.cli import console_main

def peak():
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
    print(int(hwm.split()[1]) // 1024, file=sys.stderr)

atexit.register(peak)
sys.argv = ["scaler", "backtest", sys.argv[1], "--format", "json", *sys.argv[2:]]
sys.exit(console_main())
"""


def _process(code: str, path: Path, *flags: str) -> tuple[float, str]:
    """One process running `code` on `path`: wall seconds and what it printed on stderr."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), *flags],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_ENV,
    )
    return time.perf_counter() - t0, done.stderr


def _command_vs_pandas(
    path: Path, *flags: str, pairs: int = 7
) -> tuple[float, float, float, float]:
    """`scaler backtest` (the executable's function, as a user runs it) against a pandas
    read-and-pivot, each a whole process (imports included), run in turn so a drift in the
    machine's speed hits both: the median wall seconds of each, the median of the pairwise
    ratios, and the command's peak MiB."""
    _process(_COMMAND, path, *flags), _process(_PANDAS_COMMAND, path)  # warm-up
    ours, theirs, ratios, peak = [], [], [], 0.0
    for _ in range(pairs):
        wall, stderr = _process(_COMMAND, path, *flags)
        pandas_wall, _ = _process(_PANDAS_COMMAND, path)
        ours.append(wall)
        theirs.append(pandas_wall)
        ratios.append(wall / pandas_wall)
        peak = max(peak, float(stderr.split()[-1]))
    return statistics.median(ours), statistics.median(theirs), statistics.median(ratios), peak


def backtest_figures() -> list[str]:
    """30 days of 1-minute data through read + rules + advice, and one 3-hour live window."""
    import pyarrow.csv as pacsv

    with tempfile.TemporaryDirectory() as tmp:
        path, parquet, points, signals = _month_files(Path(tmp))
        size_mb = path.stat().st_size / 1e6
        read_s = _best_of(5, lambda: read_replay(path))
        parquet_s = _best_of(5, lambda: read_replay(parquet))
        pandas_s = _best_of(5, lambda: _pandas_read_and_pivot(path))
        arrow_s = _best_of(5, lambda: pacsv.read_csv(path))
        windows = read_replay(path)
        engine_s = _best_of(3, lambda: run_backtest(windows, default_policy(), OVERRIDES))
        total_s = _best_of(3, lambda: run_backtest(read_replay(path), default_policy(), OVERRIDES))
        advice = run_backtest(windows, default_policy(), OVERRIDES)
        command_s, pandas_process_s, command_ratio, command_mib = _command_vs_pandas(path)
        # With the fleet facts the in-process figures use (OVERRIDES): EBS sizing, the type
        # advice and its ranked alternatives at every minute that proposes a type.
        fleet_s, _, fleet_ratio, fleet_mib = _command_vs_pandas(path, *_FLEET_FLAGS)
    tail = scenarios.incident().window.tail(180)

    def tick() -> None:
        evaluate_windows({"default": tail}, default_policy(), OVERRIDES)[0].live_advice()

    per_tick = [_best_of(1, tick) for _ in range(30)]
    median_ms, best_ms = statistics.median(per_tick) * 1e3, min(per_tick) * 1e3
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [
        f"30-day replay: {points:,} datapoints ({signals} signals over 43,200 minutes, the two "
        f"burst balances as 5-minute data; {size_mb:.0f} MB of CSV)",
        f"  read CSV (scaler)             {read_s:6.2f} s  "
        f"({read_s / pandas_s:.2f}x pandas+pyarrow read-and-pivot)",
        f"  read Parquet (scaler)         {parquet_s:6.2f} s  "
        f"({parquet_s / read_s:.2f}x the CSV read)",
        f"  pandas+pyarrow read-and-pivot {pandas_s:6.2f} s  (same file, same run)",
        f"  pyarrow.csv read alone        {arrow_s:6.2f} s",
        f"  rules + advice                {engine_s:6.2f} s  (with the fleet facts below)",
        f"  read + rules + advice         {total_s:6.2f} s  "
        f"({total_s / pandas_s:.2f}x pandas read-and-pivot; {points / total_s:,.0f} datapoints/s)",
        f"  pandas read-and-pivot process {pandas_process_s:6.2f} s  wall (imports included)",
        f"  `scaler backtest FILE`        {command_s:6.2f} s  wall, {command_ratio:.2f}x the "
        f"pandas process (median of 7 pairs run in turn; target <= 1.3x), peak "
        f"{command_mib:.0f} MiB (target < 200 MiB)",
        f"  the same with {' '.join(_FLEET_FLAGS)}: {fleet_s:.2f} s, {fleet_ratio:.2f}x, "
        f"peak {fleet_mib:.0f} MiB",
        f"  found {len(advice.findings)} findings, {len(advice.recommendations)} recommendations",
        f"one group's 3-hour window (live tick): median {median_ms:.1f} ms, best {best_ms:.1f} ms",
        f"bench process peak memory (max RSS): {peak_mib:.0f} MiB",
    ]


def _json_figures() -> dict[str, object]:
    """The figures of the advisor's own cost, scale and cold start, as one object."""
    cold_lines, cold = cold_start_figures()
    cost_lines, cost = cost_figures()
    scale_lines, scale = scale_figures_apart()
    for line in (*scale_lines, *cold_lines, *cost_lines):
        print(line, file=sys.stderr, flush=True)  # progress; stdout is the JSON alone
    return {
        "advisor_usd_per_group_month": round(cost.usd_per_group_month["gated"], 4),
        "advisor_usd_per_group_month_today": round(cost.usd_per_group_month["today"], 4),
        "metrics_per_group_day": round(cost.metrics_per_group_day["gated"], 1),
        "metrics_per_group_day_today": round(cost.metrics_per_group_day["today"], 1),
        "backlog_reaction_minutes": _added_minutes(cost.backlog_minutes),
        "backlog_detection_minutes": cost.backlog_minutes,
        "iowait_detection_minutes": cost.iowait_minutes["gated"],
        "iowait_detection_minutes_today": cost.iowait_minutes["today"],
        "tick_cpu_s": {str(f.groups): round(f.warm_cpu_s, 3) for f in scale},
        "tick_cpu_s_first": {str(f.groups): round(f.cold_cpu_s, 3) for f in scale},
        "tick_cpu_s_calm": {str(f.groups): round(f.calm_cpu_s, 3) for f in scale},
        "tick_calls_calm": {str(f.groups): f.calm_calls for f in scale},
        "tick_calls": {str(f.groups): f.warm_calls for f in scale},
        "tick_calls_first": {str(f.groups): f.cold_calls for f in scale},
        **{k: round(v, 3) for k, v in cold.items()},
    }


def _added_minutes(minutes: dict[str, int | None]) -> int | None:
    """Minutes the gate adds to the backlog finding (None: a design never raised it)."""
    today, gated = minutes["today"], minutes["gated"]
    return None if today is None or gated is None else gated - today


def main(argv: list[str] | None = None) -> int:
    """Print every figure group; with --json, one JSON object of the cost and scale figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    configure_logging("warning")
    if args.json:
        print(json.dumps(_json_figures()), flush=True)
        return 0
    print(f"scaler bench (python {sys.version.split()[0]})")
    for line in [*backtest_figures(), *live_tick_figures(), *simulate_figures()]:
        print(line, flush=True)
    for group in (scale_figures_apart, cold_start_figures, cost_figures):
        for line in group()[0]:
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
