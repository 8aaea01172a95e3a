"""A physical model of a queue-fed fleet, for tests, the demo and benchmarks (never advice)."""

from scaler.sim.fleet import FleetModel, Trace, simulate

__all__ = ["FleetModel", "Trace", "simulate"]
