"""Detectors, registered by name; importing this package registers every built-in rule."""

from scaler.rules import burst  # noqa: F401  (registers ebs_burst_exhaustion)
from scaler.rules.base import Rule, RuleContext, RuleOutcome, RuleSettings, rules

__all__ = ["Rule", "RuleContext", "RuleOutcome", "RuleSettings", "rules"]
