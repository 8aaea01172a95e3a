"""The demo's incident, seeded into a local AWS: one crash-report fleet whose EBS burst runs out.

Shared by `scaler demo` (two ticks, then the server stops) and `scaler demo --serve` (the
server stays up for every command of the README). The trace is shifted by whole 5-minute
periods, so its 5-minute metrics keep their boundaries and every run tells the same story.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from scaler.aws import Clients
from scaler.demo.seed import SeededGroup, seed_local_aws
from scaler.policy import GroupPolicy, Policy
from scaler.signals import floor_minute
from scaler.sim import scenarios

__all__ = ["DEMO_POLICY", "PAGE_AFTER_ONSET", "DemoIncident", "seed_demo_incident"]

DEMO_POLICY = Policy(
    groups=[
        GroupPolicy(
            name="crash-processor",
            auto_scaling_group="crash-processor-asg",
            queue="crash-reports",
            min_size=2,
            max_size=40,
        )
    ]
)
#: When the backlog alarm pages, after the throttle's onset (the bundled sample alarms' time).
PAGE_AFTER_ONSET = timedelta(minutes=9)


@dataclass(frozen=True)
class DemoIncident:
    """What was seeded, and when (in real time) the throttle began."""

    seeded: SeededGroup
    onset: datetime
    shift: timedelta  # real time minus the trace's own time


def seed_demo_incident(clients: Clients, now: datetime) -> DemoIncident:
    """Seed the incident so that its last minute is the last complete one before about `now`."""
    trace = scenarios.incident()
    assert trace.throttle_onset is not None
    group = DEMO_POLICY.groups[0]
    first_tick = trace.window.end + timedelta(minutes=1)
    aligned = floor_minute(now)
    aligned -= (aligned - first_tick) % timedelta(minutes=5)
    seeded = seed_local_aws(
        clients,
        trace.window.model_copy(update={"group": group.name}),
        asg_name=group.asg_name,
        queue_name=group.queue_name,
        min_size=2,
        max_size=40,
        now=aligned,
    )
    shift = seeded.end - trace.window.end
    return DemoIncident(seeded=seeded, onset=trace.throttle_onset + shift, shift=shift)
