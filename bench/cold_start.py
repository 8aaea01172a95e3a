"""Cold-start figures for `make bench`: importing the Lambda handler against importing boto3.

Each import runs in a fresh interpreter (nothing cached in the process), several times; the
best run is kept, as the least disturbed by the other work on a shared machine.
"""

from __future__ import annotations

import subprocess
import sys

__all__ = ["TARGET_RATIO", "cold_start_figures", "import_seconds"]

TARGET_RATIO = 1.8
_RUNS = 5
_TIMED = "import time; t = time.perf_counter(); {body}; print(time.perf_counter() - t)"


def import_seconds(body: str, runs: int = _RUNS) -> float:
    """The best of `runs` fresh interpreters' time to run `body` (import statements)."""
    best = float("inf")
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _TIMED.format(body=body)],
            check=True,
            capture_output=True,
            text=True,
        )
        best = min(best, float(out.stdout.strip()))
    return best


def cold_start_figures() -> tuple[list[str], dict[str, float]]:
    """Printed lines, and the figures (seconds and ratios) for --json."""
    boto3_s = import_seconds("import boto3")
    handler_s = import_seconds("import scaler.lambda_handler")
    # What the first invocation adds: the tick's code, loaded on first use.
    first_s = import_seconds(
        "import scaler.lambda_handler, scaler.controller, scaler.control, scaler.policy"
    )
    ratio = handler_s / boto3_s
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    lines = [
        "Lambda cold start (best of 5 fresh interpreters):",
        f"  import boto3                 {boto3_s:5.2f} s",
        f"  import scaler.lambda_handler {handler_s:5.2f} s  ({ratio:.2f}x boto3; "
        f"target <= {TARGET_RATIO:g}x: {verdict})",
        f"  + the tick's code at the first invocation {first_s:5.2f} s "
        f"({first_s / boto3_s:.2f}x boto3)",
    ]
    return lines, {
        "boto3_import_s": boto3_s,
        "lambda_import_s": handler_s,
        "lambda_import_ratio_vs_boto3": ratio,
        "lambda_first_invocation_import_s": first_s,
    }
