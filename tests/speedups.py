"""What makes the suite fast without changing what it runs: same answers, less repeated work.

The conftest installs both for every test session (each xdist worker is one).

**moto's GetMetricData in one pass per query**: `scaler.demo.moto_metrics`, which the demo's
local AWS answers with too (re-exported here for the conftest and tests/test_speedups.py).

**botocore's service models read once per session of tests.** Every `boto3.Session` gets a
fresh loader that parses each service's JSON model again (EC2's alone is megabytes): about a
second of CPU for a full set of scaler's clients, paid by every test and every CLI run.
`shared_model_loader` gives each new session's loader one shared cache of what was parsed; the
models are the same files, and botocore already shares them between one session's clients.
"""

from __future__ import annotations

from typing import Any

import botocore.loaders

from scaler.demo.moto_metrics import MOTO_GET_METRIC_DATA, indexed_get_metric_data

__all__ = ["MOTO_GET_METRIC_DATA", "indexed_get_metric_data", "shared_model_loader"]


_PARSED: dict[str | None, dict[tuple[Any, ...], Any]] = {}


def shared_model_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    """botocore.loaders.create_loader, whose loaders share one cache per search path."""
    loader = botocore.loaders.create_loader(search_path_string)
    loader._cache = _PARSED.setdefault(search_path_string, {})
    return loader
