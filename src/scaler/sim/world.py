"""The closed loop's physical world: a queue, an Auto Scaling group and its instances, per minute.

Instances live in cohorts (launched together, same type): each cohort has its EBS byte bucket,
its CPU and disk limits, and a launch time. The group follows its desired capacity with a launch
delay (pending until InService); scale-in terminates the oldest instances first, which are the
ones that have spent their burst; new instances start with full buckets. An instance type change
runs as a rolling instance refresh: batches that keep MinHealthyPercentage in service, each
waiting for its replacements to launch and warm up, pausing at checkpoints.

Work is shared across in-service instances at one common utilization (SQS consumers pull as fast
as they can), so every instance runs at the same share of its own capacity. The queue is FIFO
for age: the oldest message is the first one not yet done. `scaler.sim.loop` drives this world
with a policy; `WorldRecord` is what it leaves behind, minute by minute.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from scaler.control.settings import TypeChangeSettings
from scaler.instances.catalog import Catalog, InstanceFacts
from scaler.models import GroupState
from scaler.signals import Series, Window
from scaler.sim.fleet import FleetModel, bucket_capacity_mb, draw_noise, measure, measured_cpu
from scaler.sim.scenario import Scenario

__all__ = ["LAUNCH_TEMPLATE", "Cohort", "Refresh", "World"]

#: The simulated group's launch template, pinned to a version as scaler's type change requires.
LAUNCH_TEMPLATE = {"id": "lt-simulated", "version": "1"}
_RECORDED = (
    "arrivals",
    "done",
    "backlog",
    "visible",
    "in_flight",
    "oldest_age",
    "size",
    "used_mb",
    "disk_mb",
    "balance",
    "cpu_pct",
    "limited",
    "billed",
    "desired",
    "cost",
)
_CONCURRENCY_PER_VCPU = 2  # worker processes per vCPU: messages in flight per instance


@dataclass
class Cohort:
    """Instances launched in the same minute with the same type; they share one state."""

    count: int
    facts: InstanceFacts
    launched: int
    bucket_mb: float


@dataclass
class Refresh:
    """A rolling instance refresh onto `target`, batch by batch."""

    target: InstanceFacts
    settings: TypeChangeSettings
    started: int
    batch: int
    total: int
    next_at: int
    replaced: int = 0
    checkpoints: list[int] = field(default_factory=list)


class World:
    """One simulated group and queue; a policy reads it and sets its desired capacity."""

    def __init__(
        self,
        scenario: Scenario,
        rates: Series,
        *,
        seed: int,
        catalog: Catalog,
        hot_io_moved: bool = False,
    ) -> None:
        self.scenario, self.catalog, self.hot_io_moved = scenario, catalog, hot_io_moved
        n = scenario.minutes
        self.n = n
        facts = catalog.require(scenario.instance_type)
        self.model = FleetModel(
            instance=facts,
            cpu_s_per_msg=scenario.cpu_s_per_msg,
            mb_per_msg=scenario.mb_per_msg,
            seed=seed,
        )
        arrivals_rng = np.random.default_rng([seed, 1])
        self.arrivals = (
            arrivals_rng.poisson(rates).astype(np.float64) if scenario.poisson else rates.copy()
        )
        self.cum_arrived = np.cumsum(self.arrivals)
        low, high = scenario.metric_delay_minutes
        delays = np.random.default_rng([seed, 2]).integers(low, high + 1, size=(2, n))
        # A datapoint of minute m is visible to a tick at minute t when m + 1 + delay <= t.
        self.visible_at = np.arange(n)[None, :] + 1 + delays  # row 0: SQS, row 1: EC2 and ASG
        self.noise = draw_noise(self.model, n)
        self.rec = {key: np.zeros(n) for key in _RECORDED}
        self._max_delay = high
        self.launch_facts = facts
        self.min_size, self.max_size = scenario.fleet.min_size, scenario.fleet.max_size
        self.desired = scenario.fleet.desired
        self.cohorts = [Cohort(self.desired, facts, -10_000, bucket_capacity_mb(facts))]
        self.refresh: Refresh | None = None
        self.backlog = self.done_total = 0.0
        self.actions: list[tuple[int, int, int]] = []  # (minute, from, to)
        self.refreshes: list[tuple[int, str, str]] = []  # (minute, from type, to type)
        self.t = 0

    # ---- what the group looks like --------------------------------------------------------

    def time(self, minute: int) -> datetime:
        """The wall-clock time of a minute of the run."""
        return self.scenario.start + timedelta(minutes=minute)

    def in_service(self, t: int) -> int:
        """Instances past their launch delay."""
        ready = t - self.scenario.launch_minutes
        return sum(c.count for c in self.cohorts if c.launched <= ready)

    def warm(self, t: int) -> int:
        """Instances past launch and warmup: the ones target tracking's metric counts."""
        ready = t - self.scenario.launch_minutes - self.scenario.warmup_minutes
        return sum(c.count for c in self.cohorts if c.launched <= ready)

    def total(self) -> int:
        """Every instance, pending or in service."""
        return sum(c.count for c in self.cohorts)

    def group_state(self, t: int, name: str) -> GroupState:
        """The group as DescribeAutoScalingGroups (with activities) reports it at minute t."""
        ready = t - self.scenario.launch_minutes
        pending = sum(1 for c in self.cohorts if c.launched > ready)
        return GroupState(
            name=name,
            desired=self.desired,
            min_size=self.min_size,
            max_size=self.max_size,
            in_service=self.in_service(t),
            instance_type=self.launch_facts.instance_type,
            launch_template=dict(LAUNCH_TEMPLATE),
            activities_in_progress=pending,
            instance_refresh_in_progress=self.refresh is not None,
        )

    # ---- what CloudWatch shows ------------------------------------------------------------

    def latest(self, signal: str, t: int, count: int) -> list[tuple[int, float]]:
        """The newest `count` (minute, value) datapoints of `signal` visible at minute t, newest
        first: `cpu` (average CPUUtilization), `visible` (messages) or `size` (InService)."""
        first = max(t - count - self._max_delay - 1, 0)
        row = self.visible_at[0 if signal == "visible" else 1, first:t]
        minutes = np.flatnonzero(row <= t)[::-1][:count] + first
        if signal == "cpu":
            values = measured_cpu(self.rec["cpu_pct"][minutes], self.noise["cpu"][minutes])
        else:
            values = self.rec[signal][minutes]
        return list(zip(minutes.tolist(), values.tolist(), strict=True))

    def measured_cpu(self) -> Series:
        """CPUUtilization as CloudWatch reports it, every minute simulated so far."""
        return measured_cpu(self.rec["cpu_pct"][: self.t], self.noise["cpu"][: self.t])

    def cloudwatch_window(self, t: int, minutes: int, group: str) -> Window:
        """The trailing `minutes` of every signal as GetMetricData returns them at minute t."""
        first = max(t - minutes, 0)
        st = {key: self.rec[key][first:t] for key in _RECORDED}
        noise = {key: values[first:t] for key, values in self.noise.items()}
        series = measure(self.model, st, noise, first_minute=first)
        sqs_late = self.visible_at[0, first:t] > t
        ec2_late = self.visible_at[1, first:t] > t
        # The balance metrics are 5-minute data: complete only when their period ends.
        balance_late = self.visible_at[1, first:t] + 4 > t
        for name, values in series.items():
            late = (
                sqs_late
                if name.startswith("queue_")
                else balance_late
                if name.endswith("_balance")
                else ec2_late
            )
            # GetMetricData returns the whole grid: minutes before the run are empty, not absent.
            series[name] = np.concatenate(
                (np.full(minutes - (t - first), np.nan), np.where(late, np.nan, values))
            )
        return Window(group=group, start=self.time(t - minutes), length=minutes, series=series)

    # ---- what a policy may do -------------------------------------------------------------

    def set_desired(self, target: int) -> int:
        """SetDesiredCapacity within the group's bounds; returns the capacity set."""
        target = min(max(target, self.min_size), self.max_size)
        if target == self.desired:
            return target
        self.actions.append((self.t, self.desired, target))
        self.desired = target
        self._follow_desired()
        return target

    def start_refresh(self, instance_type: str, settings: TypeChangeSettings) -> None:
        """StartInstanceRefresh onto a new instance type (rolling, MinHealthyPercentage)."""
        target = self.catalog.require(instance_type)
        keep = math.ceil(self.desired * settings.min_healthy_percentage / 100)
        self.refresh = Refresh(
            target=target,
            settings=settings,
            started=self.t,
            batch=max(1, self.desired - keep),
            total=self.desired,
            next_at=self.t,
            checkpoints=[p for p in settings.checkpoint_percentages if p < 100],
        )
        self.refreshes.append((self.t, self.launch_facts.instance_type, instance_type))

    # ---- one minute -----------------------------------------------------------------------

    def step(self) -> None:
        """Advance the world by one minute: refresh, arrivals, work, buckets, queue."""
        t, s = self.t, self.scenario
        if self.refresh is not None:
            self._advance_refresh()
        ready = t - s.launch_minutes
        serving = [c for c in self.cohorts if c.launched <= ready and c.count > 0]
        caps, mb_per_msg = [], []
        for c in serving:
            f = c.facts
            per_msg = s.mb_per_msg * (
                1 - s.hot_io_share if self.hot_io_moved and f.local_nvme else 1.0
            )
            disk_mb = min(f.ebs_max_mb_s * 60, f.ebs_baseline_mb_s * 60 + c.bucket_mb)
            disk_cap = disk_mb / per_msg if per_msg > 0 else math.inf
            cpu_cap = f.vcpus * 60 / s.cpu_s_per_msg
            caps.append((min(cpu_cap, disk_cap), disk_mb, disk_cap < cpu_cap))
            mb_per_msg.append(per_msg)
        demand = self.backlog + self.arrivals[t]
        total_cap = sum(c.count * cap for c, (cap, _, _) in zip(serving, caps, strict=True))
        done = min(demand, total_cap)
        share = done / total_cap if total_cap > 0 else 0.0
        size = sum(c.count for c in serving)
        used_sum = disk_sum = balance_sum = cpu_sum = 0.0
        limited = False
        for c, (cap, disk_mb, disk_bound), per_msg in zip(serving, caps, mb_per_msg, strict=True):
            f = c.facts
            work = share * cap
            used = work * per_msg
            full = bucket_capacity_mb(f)
            c.bucket_mb = min(max(c.bucket_mb - (used - f.ebs_baseline_mb_s * 60), 0.0), full)
            used_sum += c.count * used
            disk_sum += c.count * disk_mb
            balance_sum += c.count * (c.bucket_mb / full if full > 0 else 1.0)
            cpu_sum += c.count * work * s.cpu_s_per_msg / (f.vcpus * 60) * 100
            limited = limited or (disk_bound and done < demand)
        self.backlog = demand - done
        self.done_total += done
        workers = sum(c.count * c.facts.vcpus * _CONCURRENCY_PER_VCPU for c in serving)
        in_flight = min(self.backlog, float(workers))
        rec, per = self.rec, max(size, 1)
        rec["arrivals"][t], rec["done"][t], rec["backlog"][t] = self.arrivals[t], done, self.backlog
        rec["visible"][t], rec["in_flight"][t] = self.backlog - in_flight, in_flight
        rec["oldest_age"][t] = self._oldest_age(t)
        rec["size"][t], rec["used_mb"][t] = size, used_sum / per
        rec["disk_mb"][t], rec["balance"][t] = disk_sum / per, balance_sum / per
        rec["cpu_pct"][t], rec["limited"][t] = cpu_sum / per, float(limited)
        rec["billed"][t], rec["desired"][t] = self.total(), self.desired
        rec["cost"][t] = sum(c.count * self._price(c.facts) for c in self.cohorts) / 60
        self.t += 1

    def _oldest_age(self, t: int) -> float:
        """Seconds since the oldest message not yet done arrived (FIFO), at the minute's end."""
        if self.backlog < 0.5:
            return 0.0
        first = int(np.searchsorted(self.cum_arrived, self.done_total, side="right"))
        return float((t + 1 - first) * 60)

    def _price(self, facts: InstanceFacts) -> float:
        return self.catalog.price(facts.instance_type) or 0.0

    def _follow_desired(self) -> None:
        """Launch (full buckets) or terminate (oldest first) to reach the desired capacity."""
        have = self.total()
        if self.desired > have:
            self._launch(self.desired - have, self.launch_facts)
        else:
            self._terminate(have - self.desired, lambda c: True)

    def _launch(self, count: int, facts: InstanceFacts) -> None:
        self.cohorts.append(Cohort(count, facts, self.t, bucket_capacity_mb(facts)))

    def _terminate(self, count: int, pick: Callable[[Cohort], bool]) -> None:
        for c in self.cohorts:  # oldest first: cohorts are kept in launch order
            if count == 0:
                break
            if pick(c):
                gone = min(c.count, count)
                c.count -= gone
                count -= gone
        self.cohorts = [c for c in self.cohorts if c.count > 0]

    def _advance_refresh(self) -> None:
        r = self.refresh
        assert r is not None
        if self.t < r.next_at:
            return
        old = sum(c.count for c in self.cohorts if c.facts != r.target)
        if old == 0:
            self.launch_facts, self.refresh = r.target, None
            return
        batch = min(r.batch, old)
        self._terminate(batch, lambda c: c.facts != r.target)
        self._launch(batch, r.target)
        r.replaced += batch
        warmup = math.ceil(r.settings.instance_warmup_seconds / 60)
        r.next_at = self.t + self.scenario.launch_minutes + warmup
        while r.checkpoints and r.replaced * 100 >= r.checkpoints[0] * r.total:
            r.checkpoints.pop(0)
            r.next_at += math.ceil(r.settings.checkpoint_delay_seconds / 60)
