"""The scaling policies people use, as the closed loop runs them, registered by name.

Each policy sees what it would see in AWS: CloudWatch datapoints 1-3 minutes late (target
tracking and step scaling read alarms), or the queue's attributes directly (KEDA polls SQS).
Semantics follow the AWS and KEDA documentation:

- target tracking: the high alarm needs 3 consecutive one-minute datapoints above the target,
  the low alarm 15 below 90% of it; capacity becomes ceil(warm instances x metric / target);
  a scale-out counts warming instances as capacity already added; scale-in removes at most 10%
  at a time and never while an instance warms; scale-in can be disabled; datapoints from before
  the policy's last action are not counted again;
- step scaling: a queue-depth alarm (one datapoint) adds 25% / 50% / 100% by how far the queue
  is above the threshold, one action per 300 s; 15 datapoints under 5% of it remove one;
- KEDA: ceil((visible + in flight) / queueLength), HPA's 10% tolerance, immediate scale-up, a
  300 s scale-down stabilization (the highest recommendation of the last 5 minutes);
- fixed: the fleet set once (raising the minimum);
- oracle: knows future arrivals and an instance's sustained capacity; it launches ahead by the
  launch delay and keeps exactly enough for zero lateness over the next 30 minutes. It never
  recycles instances to harvest fresh burst buckets, so a policy that does (scaling in the
  oldest, spent instances and out with new, full ones) can cost less while it lasts.

scaler's own controller in the loop is `scaler.sim.in_the_loop`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from scaler.control import StateStore
from scaler.instances.catalog import Catalog
from scaler.registry import Registry
from scaler.sim.scenario import Scenario
from scaler.sim.world import World

__all__ = [
    "POLICY_NAMES",
    "BacklogPerInstance",
    "CpuTargetTracking",
    "Fixed",
    "KedaQueueLength",
    "Oracle",
    "PolicyContext",
    "SimPolicy",
    "StepQueue",
    "policies",
]

HIGH_DATAPOINTS, LOW_DATAPOINTS, LOW_FRACTION = 3, 15, 0.9


class SimPolicy(Protocol):
    """A policy in the loop: at each minute, look at the world and maybe act on it."""

    def decide(self, world: World, t: int) -> None:
        """Act (or not) at the start of minute t."""
        ...


@dataclass(frozen=True)
class PolicyContext:
    """What building a policy may use: the scenario, the catalog, a fresh state store."""

    scenario: Scenario
    catalog: Catalog
    store: StateStore


#: A factory per policy name; scaler's own two are registered by scaler.sim.in_the_loop.
policies: Registry[Callable[[PolicyContext], SimPolicy]] = Registry("policy")


class _TargetTracking:
    """AWS target tracking on one metric (alarm semantics shared by CPU and backlog)."""

    SCALE_IN_SHARE = 0.1  # scale in conservatively: 10% of the capacity (at least 1) at a time

    def __init__(self, target: float, *, scale_in: bool) -> None:
        self.target, self.scale_in = target, scale_in
        self.last_action = -1

    def metric(self, world: World, t: int, count: int) -> list[tuple[int, float]]:
        raise NotImplementedError

    def decide(self, world: World, t: int) -> None:
        # A datapoint from before the last action describes a fleet that no longer exists.
        fresh = [v for m, v in self.metric(world, t, LOW_DATAPOINTS) if m > self.last_action]
        base = world.warm(t) or world.in_service(t)
        if len(fresh) >= HIGH_DATAPOINTS and all(p > self.target for p in fresh[:HIGH_DATAPOINTS]):
            wanted = math.ceil(base * fresh[0] / self.target)
            if wanted > world.desired:  # warming instances already count as capacity
                self._act(world, t, wanted)
            return
        low = self.target * LOW_FRACTION
        if (
            self.scale_in
            and len(fresh) >= LOW_DATAPOINTS
            and all(p < low for p in fresh[:LOW_DATAPOINTS])
            and world.warm(t) == world.total()  # no scale-in while any instance warms
        ):
            step = max(1, math.floor(world.desired * self.SCALE_IN_SHARE))
            wanted = max(math.ceil(base * fresh[0] / self.target), world.desired - step)
            if wanted < world.desired:
                self._act(world, t, wanted)

    def _act(self, world: World, t: int, wanted: int) -> None:
        before = world.desired
        if world.set_desired(wanted) != before:
            self.last_action = t


class CpuTargetTracking(_TargetTracking):
    """Target tracking on the group's average CPUUtilization."""

    def metric(self, world: World, t: int, count: int) -> list[tuple[int, float]]:
        return world.latest("cpu", t, count)


class BacklogPerInstance(_TargetTracking):
    """The SQS guide's metric math: visible messages / InService instances."""

    def metric(self, world: World, t: int, count: int) -> list[tuple[int, float]]:
        size = dict(world.latest("size", t, count + 5))
        return [
            (m, v / max(size[m], 1.0))
            for m, v in world.latest("visible", t, count)
            if m in size  # metric math needs both metrics at the minute
        ]


class StepQueue:
    """Step scaling on an ApproximateNumberOfMessagesVisible alarm."""

    COOLDOWN_MINUTES = 5
    STEPS = ((10.0, 1.0), (3.0, 0.5), (1.0, 0.25))  # (multiple of the threshold, added share)

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.last_action = -10_000

    def decide(self, world: World, t: int) -> None:
        if t - self.last_action < self.COOLDOWN_MINUTES:
            return
        points = [v for _, v in world.latest("visible", t, LOW_DATAPOINTS)]
        if not points:
            return
        before = world.desired
        if points[0] >= self.threshold:
            share = next(add for times, add in self.STEPS if points[0] >= times * self.threshold)
            target = before + max(1, math.ceil(before * share))
        elif len(points) >= LOW_DATAPOINTS and all(p < 0.05 * self.threshold for p in points):
            target = before - 1
        else:
            return
        if world.set_desired(target) != before:
            self.last_action = t


class KedaQueueLength:
    """KEDA's SQS scaler through the HPA: queue length per instance."""

    STABILIZATION_MINUTES, TOLERANCE = 5, 0.1

    def __init__(self, queue_length: float) -> None:
        self.queue_length = queue_length
        self.recent: deque[int] = deque(maxlen=self.STABILIZATION_MINUTES)

    def decide(self, world: World, t: int) -> None:
        if t == 0:
            return
        # KEDA asks SQS itself (GetQueueAttributes): the queue as of the minute just ended.
        messages = world.rec["visible"][t - 1] + world.rec["in_flight"][t - 1]
        current = world.desired
        ratio = messages / (self.queue_length * current)
        raw = current if abs(ratio - 1) <= self.TOLERANCE else math.ceil(ratio * current)
        self.recent.append(raw)
        target = raw if raw > current else max(self.recent)
        world.set_desired(target)


class Fixed:
    """A fleet of fixed size: the stopgap of raising the group's minimum."""

    def __init__(self, size: int) -> None:
        self.size = size

    def decide(self, world: World, t: int) -> None:
        if t == 0:
            world.min_size = min(max(world.min_size, self.size), world.max_size)
            world.set_desired(self.size)


class Oracle:
    """Knows future arrivals and an instance's sustained capacity: the cost floor."""

    HORIZON_MINUTES = 30

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.per_instance: float | None = None

    def decide(self, world: World, t: int) -> None:
        if self.per_instance is None:
            s, f = self.scenario, world.launch_facts
            disk = f.ebs_baseline_mb_s * 60 / s.mb_per_msg if s.mb_per_msg else math.inf
            self.per_instance = min(f.vcpus * 60 / s.cpu_s_per_msg, disk)
        # Launch ahead by the launch delay (a launch serves from t + ahead, a scale-in takes
        # effect now); keep what the next HORIZON_MINUTES will need, so a shorter dip is never
        # worth a scale-in.
        ahead = self.scenario.launch_minutes
        upcoming = world.arrivals[t : t + ahead + self.HORIZON_MINUTES]
        peak = float(upcoming.max()) if len(upcoming) else float(world.arrivals[-1])
        # Whatever is queued now is worked off within the launch delay too.
        need = (peak + world.backlog / max(ahead, 1)) / self.per_instance
        world.set_desired(max(math.ceil(need - 1e-9), 1))


policies.register("cpu-target-75")(
    lambda c: CpuTargetTracking(75.0, scale_in=c.scenario.tuning.cpu_scale_in)
)
policies.register("cpu-target-60")(
    lambda c: CpuTargetTracking(60.0, scale_in=c.scenario.tuning.cpu_scale_in)
)
policies.register("backlog-per-instance")(
    lambda c: BacklogPerInstance(c.scenario.tuning.backlog_per_instance, scale_in=True)
)
policies.register("step-queue")(lambda c: StepQueue(c.scenario.tuning.step_alarm_messages))
policies.register("keda-queue-length")(
    lambda c: KedaQueueLength(c.scenario.tuning.keda_queue_length)
)
policies.register("fixed")(lambda c: Fixed(c.scenario.tuning.fixed_size))
policies.register("oracle")(lambda c: Oracle(c.scenario))

#: Every policy in report order.
POLICY_NAMES = (
    "cpu-target-75",
    "cpu-target-60",
    "backlog-per-instance",
    "step-queue",
    "keda-queue-length",
    "fixed",
    "scaler",
    "scaler+type",
    "oracle",
)
