"""Scale figures for `make bench`: one live tick over 1 to 5,000 groups, AWS answered from memory.

moto cannot stand in here: it answers GetMetricData by scanning every stored datapoint, so its
time would drown scaler's. Instead every AWS call is answered by a `before-call` hook on the
real boto3 clients (botocore then sends nothing), from a table built once: each group is an
Auto Scaling group with its own launch template (a numbered version), and every query returns
the incident's last three hours before the throttle's onset (9 minutes into it), so the rules
run on real data. The CPU figure (time.process_time) is scaler's: reading, windows, rules and
advice; the stub's own share is the cost of handing back prebuilt lists.

Each count runs two ticks on one set of clients, as a `--every` loop or a warm Lambda does:
the first finds every launch template unknown, the second finds them cached.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from scaler.aws import Clients, make_clients
from scaler.demo.embedded import local_session
from scaler.live import TickAdvice, advise
from scaler.policy import GroupPolicy, LiveSettings, Policy
from scaler.signals import Signal, Window
from scaler.sim import scenarios
from scaler.sources.autoscaling import DESCRIBE_BATCH
from scaler.sources.cloudwatch import MAX_QUERIES_PER_CALL
from scaler.sources.metric_map import resolve_metrics

__all__ = [
    "GROUP_COUNTS",
    "TARGET_CPU_S",
    "StubAws",
    "TickFigures",
    "incident_tail",
    "scale_figures",
    "scale_figures_apart",
    "tick_figures",
]

GROUP_COUNTS = (1, 200, 1000, 5000)
TARGET_CPU_S = 30.0  # a 5,000-group tick, this machine
_INSTANCE_TYPE = "m5.xlarge"


@dataclass
class _Http:
    """What botocore reads of an HTTP response a before-call hook hands back."""

    status_code: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def incident_tail(minutes: int = 180) -> Window:
    """The incident's `minutes` up to 9 minutes past the throttle's onset: iowait is showing."""
    incident = scenarios.incident()
    assert incident.throttle_onset is not None
    upto = int((incident.throttle_onset - incident.window.start).total_seconds() // 60) + 9
    return incident.window.head(upto).tail(minutes)


class StubAws:
    """Answers Auto Scaling, EC2 and CloudWatch calls from memory; counts every call."""

    def __init__(self, window: Window, groups: int) -> None:
        self.calls: Counter[str] = Counter()
        self._groups = groups
        counts = window.get(Signal.INSTANCES.value)
        finite = counts[np.isfinite(counts)] if counts is not None else np.array([1.0])
        self._in_service = max(int(finite[-1]), 1)
        self._series = _raw_series(window)
        self._local = threading.local()  # each thread's call in flight (SQS reads in parallel)
        self._lock = threading.Lock()
        visible = window.get(Signal.QUEUE_VISIBLE.value)
        self.queue_visible = int(np.nan_to_num(visible[-1])) if visible is not None else 0

    def install(self, clients: Clients) -> None:
        """Answer every call of these clients (nothing reaches the network)."""
        for client in (clients.autoscaling, clients.ec2, clients.cloudwatch, clients.sqs):
            client.meta.events.register("before-parameter-build.*.*", self._keep_params)
            client.meta.events.register("before-call.*.*", self._answer)

    def _keep_params(self, params: Mapping[str, Any], **_: Any) -> None:
        # before-call sees the serialized request; the call's own parameters are read here.
        self._local.params = dict(params)

    def _answer(self, model: Any, **_: Any) -> tuple[_Http, Any]:
        with self._lock:
            self.calls[model.name] += 1
        answer = getattr(self, f"_{model.name}", None)
        if answer is None:
            raise AssertionError(f"the stub does not answer {model.name}")
        return _Http(), answer(self._local.params)

    def _DescribeAutoScalingGroups(self, params: Mapping[str, Any]) -> Any:  # noqa: N802
        groups = []
        for name in params["AutoScalingGroupNames"]:
            index = int(name[1:])
            instances = [
                {"InstanceId": f"i-{index}-{n}", "InstanceType": _INSTANCE_TYPE}
                | {"LifecycleState": "InService"}
                for n in range(self._in_service)
            ]
            groups.append(
                {
                    "AutoScalingGroupName": name,
                    "DesiredCapacity": self._in_service,
                    "MinSize": 1,
                    "MaxSize": 40,
                    "Instances": instances,
                    "LaunchTemplate": {"LaunchTemplateId": f"lt-{index:08x}", "Version": "3"},
                }
            )
        return {"AutoScalingGroups": groups}

    def _DescribeLaunchTemplateVersions(self, params: Mapping[str, Any]) -> Any:  # noqa: N802
        return {
            "LaunchTemplateVersions": [
                {
                    "LaunchTemplateId": params.get("LaunchTemplateId", ""),
                    "VersionNumber": 3,
                    "LaunchTemplateData": {"InstanceType": _INSTANCE_TYPE},
                }
            ]
        }

    def _GetQueueUrl(self, params: Mapping[str, Any]) -> Any:  # noqa: N802
        return {
            "QueueUrl": f"https://sqs.us-east-1.amazonaws.com/123456789012/{params['QueueName']}"
        }

    def _GetQueueAttributes(self, params: Mapping[str, Any]) -> Any:  # noqa: N802
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(self.queue_visible),
                "ApproximateNumberOfMessagesNotVisible": "10",
                "ApproximateNumberOfMessagesDelayed": "0",
            }
        }

    def _GetMetricData(self, params: Mapping[str, Any]) -> Any:  # noqa: N802
        results = []
        for query in params["MetricDataQueries"]:
            signal = query["Id"].split("_", 1)[1]
            stamps, values = self._series.get(signal, ([], []))
            results.append(
                {
                    "Id": query["Id"],
                    "Timestamps": stamps,
                    "Values": values,
                    "StatusCode": "Complete",
                }
            )
        return {"MetricDataResults": results, "Messages": []}


def _raw_series(window: Window) -> dict[str, tuple[list[datetime], list[float]]]:
    """Each signal as CloudWatch holds it (scale and per-instance undone), by query Id part."""
    instances = window.get(Signal.INSTANCES.value)
    out: dict[str, tuple[list[datetime], list[float]]] = {}
    for signal, spec in resolve_metrics().items():
        values = window.get(signal)
        if values is None:
            continue
        raw = values / spec.scale
        if spec.per_instance and instances is not None:
            raw = raw * instances
        keep = np.flatnonzero(np.isfinite(raw))
        out[signal] = ([window.time_at(int(i)) for i in keep], [float(raw[i]) for i in keep])
    return out


@dataclass(frozen=True)
class TickFigures:
    """One group count: CPU seconds and calls of the first (cold) and second (warm) tick."""

    groups: int
    cold_cpu_s: float
    warm_cpu_s: float
    cold_calls: dict[str, int]
    warm_calls: dict[str, int]
    advised: int
    failed: int
    calm_cpu_s: float
    calm_calls: dict[str, int]

    def minimum_calls(self) -> dict[str, int]:
        """The fewest calls a warm tick can make: batches of 50 groups, of 500 queries."""
        queries = self.groups * len(resolve_metrics())
        return {
            "DescribeAutoScalingGroups": math.ceil(self.groups / DESCRIBE_BATCH),
            "GetMetricData": math.ceil(queries / MAX_QUERIES_PER_CALL),
        }


def _timed_ticks(
    window: Window, groups: int, policy: Policy, minutes: tuple[int, ...]
) -> list[tuple[float, dict[str, int], TickAdvice]]:
    """Ticks on one set of clients at `minutes` past the window's end: CPU, calls, result."""
    stub = StubAws(window, groups)
    clients = make_clients(local_session(), endpoint_url="http://stubbed.invalid")
    stub.install(clients)
    out = []
    for minute in minutes:
        stub.calls.clear()
        started = time.process_time()
        tick = advise(policy, clients, now=window.end + timedelta(minutes=1 + minute))
        out.append((time.process_time() - started, dict(stub.calls), tick))
    return out


def tick_figures(
    groups: int, window: Window | None = None, calm: Window | None = None
) -> TickFigures:
    """A tick that reads every group (twice: cold, then warm), and a calm gated tick."""
    window = window or incident_tail()
    calm = calm or calm_tail()
    # Every group in trouble: every tick reads CloudWatch for all (the worst case).
    every_tick = Policy(
        groups=[GroupPolicy(name=f"g{i}") for i in range(groups)],
        live=LiveSettings(full_read_every_minutes=1),
    )
    (cold_s, cold_calls, _), (warm_s, warm_calls, warm) = _timed_ticks(
        window, groups, every_tick, (0, 0)
    )
    # Every group calm, held at its size: the second tick reads only the queues.
    in_service = StubAws(calm, 1)._in_service
    gated = Policy(
        groups=[
            GroupPolicy(name=f"g{i}", min_size=in_service, max_size=in_service)
            for i in range(groups)
        ]
    )
    _, (calm_s, calm_calls, calm_tick) = _timed_ticks(calm, groups, gated, (0, 1))
    assert calm_tick.full_reads == 0, "the calm tick read CloudWatch: the bench's calm is not"
    return TickFigures(
        groups=groups,
        cold_cpu_s=cold_s,
        warm_cpu_s=warm_s,
        cold_calls=cold_calls,
        warm_calls=warm_calls,
        advised=len(warm.groups),
        failed=len(warm.errors),
        calm_cpu_s=calm_s,
        calm_calls=calm_calls,
    )


def calm_tail(minutes: int = 180) -> Window:
    """A healthy fleet at a night-time trough: nothing to find."""
    return scenarios.healthy_diurnal(0.1).window.tail(minutes)


def scale_figures(counts: tuple[int, ...] = GROUP_COUNTS) -> tuple[list[str], list[TickFigures]]:
    """Printed lines for every group count, and the figures themselves (for --json)."""
    window = incident_tail()
    lines = ["one tick, AWS answered from memory (CPU seconds; calls cold -> warm; minimum warm):"]
    measured = []
    for count in counts:
        f = tick_figures(count, window)
        measured.append(f)
        minimum = f.minimum_calls()
        calls = ", ".join(
            f"{op} {f.cold_calls.get(op, 0)}->{f.warm_calls.get(op, 0)}"
            f"{f' (min {minimum[op]})' if op in minimum else ''}"
            for op in (
                "DescribeAutoScalingGroups",
                "DescribeLaunchTemplateVersions",
                "GetMetricData",
            )
        )
        verdict = ""
        if count == max(counts):
            met = "met" if f.warm_cpu_s < TARGET_CPU_S else "NOT met"
            verdict = f"; target < {TARGET_CPU_S:g} s: {met}"
        lines.append(
            f"  {count:5,d} groups, every group read: first {f.cold_cpu_s:6.2f} s, next "
            f"{f.warm_cpu_s:6.2f} s ({f.warm_cpu_s / count * 1e3:4.1f} ms a group){verdict}; "
            f"{calls}; {f.advised} advised, {f.failed} failed"
        )
        lines.append(
            f"  {count:5,d} groups, all calm (gated): {f.calm_cpu_s:6.2f} s; "
            + ", ".join(f"{op} {n}" for op, n in sorted(f.calm_calls.items()))
        )
    return lines, measured


def scale_figures_apart() -> tuple[list[str], list[TickFigures]]:
    """`scale_figures` in a process of its own, as a tick runs (cron starts one; a Lambda's
    runs only ticks), not in a bench process whose heap a 30-day backtest, a local AWS server
    and a week of simulation have grown."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.stub_tick"], check=True, capture_output=True, text=True
    )
    out = json.loads(done.stdout)
    return out["lines"], [TickFigures(**f) for f in out["figures"]]


if __name__ == "__main__":
    from scaler.logs import configure_logging

    configure_logging("warning")
    lines, figures = scale_figures()
    print(json.dumps({"lines": lines, "figures": [dataclasses.asdict(f) for f in figures]}))
