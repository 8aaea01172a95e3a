"""`scaler signals [--policy P]`: every signal, its unit, and the CloudWatch metric it reads."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from scaler.cli import EXIT_OK, commands
from scaler.policy import load_policy
from scaler.signals import Signal
from scaler.sources.metric_map import MetricSpec, resolve_metrics
from scaler.vocabulary import SIGNAL_INFO

__all__ = ["signal_table"]


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument(
        "--policy", help="show each group's metrics after the policy's `metrics:` overrides"
    )
    return _run


def _metric(spec: MetricSpec | None) -> str:
    if spec is None:
        return "not fetched (no default metric; name one under the policy's metrics:)"
    dims = ",".join(f"{name}={value}" for name, value in spec.dimensions)
    notes = [spec.stat, f"{spec.period_s // 60} min"]
    if spec.scale != 1:
        notes.append(f"x{spec.scale:g}")
    if spec.per_instance:
        notes.append("/ instances")
    return f"{spec.namespace} {spec.metric_name} [{dims}] ({', '.join(notes)})"


def signal_table(metrics: dict[str, MetricSpec]) -> list[str]:
    """Aligned lines: signal, unit, CloudWatch metric; then what each signal means."""
    rows = [("signal", "unit", "CloudWatch metric (statistic, period)")]
    for signal in Signal:
        unit, _ = SIGNAL_INFO.get(signal.value, ("?", "undocumented"))
        rows.append((signal.value, unit, _metric(metrics.get(signal.value))))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows]
    lines.append("")
    lines += [
        f"{s.value:<{width[0]}}  {SIGNAL_INFO.get(s.value, ('?', 'undocumented'))[1]}"
        for s in Signal
    ]
    return lines


def _run(args: argparse.Namespace) -> int:
    if not args.policy:
        print("\n".join(signal_table(resolve_metrics())))
        print("\nPlaceholders: {asg} the Auto Scaling group, {queue} the queue name.")
        return EXIT_OK
    policy = load_policy(args.policy)
    for index, group in enumerate(policy.groups):
        if index:
            print()
        print(f"group {group.name} (ASG {group.asg_name}, queue {group.queue_name}):")
        filled = {
            signal: spec.model_copy(
                update={
                    "dimensions": tuple(
                        (d["Name"], d["Value"])
                        for d in spec.dimensions_for(
                            group=group.name, asg=group.asg_name, queue=group.queue_name
                        )
                    )
                }
            )
            for signal, spec in resolve_metrics(group.metrics).items()
        }
        print("\n".join(f"  {line}" if line else "" for line in signal_table(filled)))
    return EXIT_OK


commands.register("signals")(("list signals, units and the CloudWatch metric of each", _add))
