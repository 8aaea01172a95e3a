"""One dry-run tick over live AWS: each group's state and metrics in, its advice out.

Every group of the policy is read together (Auto Scaling in batches of 50, CloudWatch in
GetMetricData calls of up to 500 queries), then evaluated alone: one group's failure is an
error in the output, never a stop for the others.

What it costs: CloudWatch bills GetMetricData per metric requested, 20 a group a read. So a
tick reads every queue's depth from SQS (GetQueueAttributes: current, billed per request) and
reads a group's CloudWatch metrics only when `full_read_due` says so: every
`live.full_read_every_minutes` while the queue is calm, and every tick while the queue grows
or the group's last read had a finding, advised a scale-out or a type change. Between full
reads a group carries its last read forward (`carry_forward`): its findings and its proposal,
complete data (the rails may scale in on it) only while the queue's depth confirms it stayed
calm. What a full read concluded is kept in a `ReadMemory`: the state store's for `scaler
run` and Lambda (a process started fresh each tick remembers), else this process's.

CloudWatch publishes SQS and EC2 datapoints a few minutes late, so the newest minutes of a
window are often empty. A tick therefore judges the group as of the last minute that has the
queue and the instance count (its *data age* says how old that is), and calls the data
incomplete when that minute is older than `live.max_data_age_minutes`: incomplete data never
reads as idle, so it never lets the rails scale in.
"""

from scaler.live.advice import CORE_SIGNALS, GroupAdvice, TickAdvice, advise_group, as_of_data
from scaler.live.gate import (
    GROWTH_FACTOR,
    GROWTH_MESSAGES,
    KeptReads,
    LastRead,
    ProcessMemory,
    ReadMemory,
    StoredMemory,
    carry_forward,
    full_read_due,
    settings_digest,
)
from scaler.live.tick import PlaceClients, advise, place_clients

__all__ = [
    "CORE_SIGNALS",
    "GROWTH_FACTOR",
    "GROWTH_MESSAGES",
    "GroupAdvice",
    "KeptReads",
    "LastRead",
    "PlaceClients",
    "ProcessMemory",
    "ReadMemory",
    "StoredMemory",
    "TickAdvice",
    "advise",
    "advise_group",
    "as_of_data",
    "carry_forward",
    "full_read_due",
    "place_clients",
    "settings_digest",
]
