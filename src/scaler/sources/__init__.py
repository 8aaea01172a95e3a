"""Metric sources: each turns a scaling group's metrics into a Window of SIGNALS.md signals."""
