"""Metric sources: each produces one `Window` per scaling group."""
