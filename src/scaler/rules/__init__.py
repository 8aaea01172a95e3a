"""Detectors, registered by name; importing this package registers every built-in rule."""

from scaler.rules.base import Rule, RuleContext, RuleOutcome, RuleSettings, rules

__all__ = ["Rule", "RuleContext", "RuleOutcome", "RuleSettings", "rules"]
