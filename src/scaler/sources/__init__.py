"""Metric sources: each turns a scaling group's metrics into a Window of SIGNALS.md signals."""

from __future__ import annotations

__all__: list[str] = []
