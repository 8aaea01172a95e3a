"""Paging alerts in, enriched pages out: parse -> match -> diagnose -> render -> destinations.

- `parse`: every alarm shape AWS and Alertmanager send, read into one `alarm.Alarm` by the
  `fields` readers (hostile text made safe by `safe`, input bounded); wrong shapes named.
- `match`: the policy group an alarm concerns (dimensions, child alarms, labels).
- `diagnose`: the group's diagnosis within a time budget, failing open.
- `render`: the page every destination sends (summary, severity, links).
- `destinations/`: one module per backend (PagerDuty, Slack, SNS, stdout), registered by name.
- `settings`: the policy's `alerts:` block.

Called by `scaler enrich` (cli/enrich.py) and the enrich Lambda (enrich_handler.py). This
package's `__init__` imports nothing, so `policy.py` can import `alerts.settings` without a cycle.
"""

from __future__ import annotations

__all__: list[str] = []
