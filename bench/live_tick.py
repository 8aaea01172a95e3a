"""Live-tick figures for `make bench`: GetMetricData calls against the minimum, tick wall time.

Every group gets an Auto Scaling group on the local moto server. With one group, it also gets
three hours of the incident's metrics; with 50 and 200, none (moto answers GetMetricData by
scanning every stored datapoint for every period of every query, so stored data would make the
figure moto's, not scaler's). The call count does not depend on the data.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

from scaler.aws import Clients, make_clients
from scaler.demo.embedded import local_aws, local_session
from scaler.demo.seed import seed_local_aws
from scaler.live import advise
from scaler.policy import GroupPolicy, Policy
from scaler.sim import scenarios
from scaler.sources.cloudwatch import MAX_QUERIES_PER_CALL

GROUP_COUNTS = (1, 50, 200)


def _add_groups(clients: Clients, names: list[str], template_id: str) -> None:
    for name in names:
        clients.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Default"},
            MinSize=0,
            MaxSize=10,
            DesiredCapacity=0,
            AvailabilityZones=["us-east-1a"],
        )
        clients.sqs.create_queue(QueueName=name)  # a tick reads each queue's depth first


def _timed_metric_calls(clients: Clients) -> dict[str, float]:
    """Count GetMetricData requests and the seconds spent in them, via botocore events."""
    seen: dict[str, float] = {"calls": 0, "seconds": 0.0, "_start": 0.0}
    events = clients.cloudwatch.meta.events

    def before(**_: Any) -> None:
        seen["calls"] += 1
        seen["_start"] = time.perf_counter()

    def after(**_: Any) -> None:
        seen["seconds"] += time.perf_counter() - seen["_start"]

    events.register("before-call.cloudwatch.GetMetricData", before)
    events.register("after-call.cloudwatch.GetMetricData", after)
    return seen


def live_tick_figures() -> list[str]:
    """One tick over 1, 50 and 200 groups: calls vs ceil(queries / 500), and wall time."""
    incident = scenarios.incident()
    assert incident.throttle_onset is not None
    window = incident.window.head(
        int((incident.throttle_onset - incident.window.start).total_seconds() // 60) + 9
    ).tail(180)
    lines = ["live tick against the local moto server (1 group: 3 h of metrics; 50, 200: none):"]
    with local_aws() as server:
        for count in GROUP_COUNTS:
            server.reset()
            clients = make_clients(local_session(), endpoint_url=server.endpoint_url)
            now = window.end + timedelta(minutes=1)
            seeded = seed_local_aws(
                clients,
                window.model_copy(
                    update={"group": "g0", "series": {} if count > 1 else window.series}
                ),
                asg_name="g0",
                queue_name="g0",
                now=now,
            )
            others = [f"g{i}" for i in range(1, count)]
            _add_groups(clients, others, seeded.launch_template_id)
            policy = Policy(groups=[GroupPolicy(name=f"g{i}") for i in range(count)])
            seen = _timed_metric_calls(clients)
            started = time.perf_counter()
            tick = advise(policy, clients, now=now)
            wall = time.perf_counter() - started
            minimum = math.ceil(tick.metric_queries / MAX_QUERIES_PER_CALL)
            lines.append(
                f"  {count:3d} groups: {tick.metric_queries:5,} queries, "
                f"{int(seen['calls'])} GetMetricData call(s) (minimum {minimum}); "
                f"tick {wall:5.2f} s, of which moto's GetMetricData {seen['seconds']:5.2f} s; "
                f"{len(tick.groups)} advised, {len(tick.errors)} failed"
            )
    return lines
