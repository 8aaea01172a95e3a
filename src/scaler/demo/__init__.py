"""The demo's local AWS: the embedded moto server, seeding it with the incident, serving it.

Used by `scaler demo` (one shot, or `--serve` to keep it running), the tests and the benchmark;
never by the product's own code path, which only ever sees an endpoint URL.
"""

from __future__ import annotations

__all__: list[str] = []
