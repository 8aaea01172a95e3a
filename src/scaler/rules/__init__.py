"""Detectors, registered by name; importing this package registers every built-in rule."""

from scaler.rules import backlog, burst, cpu, dependency, io, latency, memory
from scaler.rules.base import Opinion, Rule, RuleContext, RuleOutcome, RuleSettings, rules

__all__ = [
    "Opinion",
    "Rule",
    "RuleContext",
    "RuleOutcome",
    "RuleSettings",
    "backlog",
    "burst",
    "cpu",
    "dependency",
    "io",
    "latency",
    "memory",
    "rules",
]
