"""What each signal means and its unit, in words: for `scaler signals` and the replay docs.

Called by `scaler.cli.signals_cmd`; docs/replay-format.md says the same in prose. Keyed by
name so a signal added to `scaler.signals.Signal` shows as undocumented until described here.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["SIGNAL_INFO"]

#: signal name -> (unit, meaning). Rates are per minute; fleet values are per in-service instance.
SIGNAL_INFO = MappingProxyType(
    {
        "queue_visible": ("messages", "messages waiting in the queue"),
        "queue_in_flight": ("messages", "messages taken by a worker and not yet deleted"),
        "queue_oldest_age": ("seconds", "age of the oldest waiting message"),
        "queue_sent": ("messages/min", "arrivals: messages sent to the queue"),
        "queue_deleted": ("messages/min", "throughput: messages the fleet finished and deleted"),
        "instances": ("instances", "in-service instances in the group"),
        "cpu_user": ("% of CPU", "CPU time in user space, average per instance"),
        "cpu_system": ("% of CPU", "CPU time in the kernel, average per instance"),
        "cpu_iowait": ("% of CPU", "CPU idle while waiting for disk I/O, average per instance"),
        "cpu_steal": ("% of CPU", "CPU time taken by the hypervisor, average per instance"),
        "cpu_idle": ("% of CPU", "CPU idle with no I/O pending, average per instance"),
        "ebs_read_ops": ("ops/min", "EBS read operations per instance"),
        "ebs_write_ops": ("ops/min", "EBS write operations per instance"),
        "ebs_read_bytes": ("bytes/min", "EBS bytes read per instance"),
        "ebs_write_bytes": ("bytes/min", "EBS bytes written per instance"),
        "ebs_byte_balance": ("%", "EBS throughput burst bucket left (5-minute data)"),
        "ebs_io_balance": ("%", "EBS IOPS burst bucket left (5-minute data)"),
        "ebs_throughput_exceeded": ("0/1", "1 when an instance tried to exceed its EBS MB/s"),
        "ebs_iops_exceeded": ("0/1", "1 when an instance tried to exceed its EBS IOPS"),
        "mem_used": ("%", "memory in use, average per instance"),
        "work_latency": ("seconds", "time to process one unit of work (your own metric)"),
    }
)
