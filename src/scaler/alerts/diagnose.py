"""The alarm's group diagnosed within a time budget, failing open: never delays the page.

`advise` (the same read-only tick as `scaler advise`) runs for the one group in a worker
thread; its AWS retries are bounded by the budget too. If it fails, or is still running when the
budget ends, the page goes out without it, saying why ("diagnosis unavailable: ..."). A thread
left running past its budget is a daemon: it never holds the process or the invocation.
Called by `scaler enrich` and the enrich Lambda.
"""

from __future__ import annotations

import threading
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from scaler.alerts.safe import clean
from scaler.aws import Clients, RetryPolicy
from scaler.errors import ScalerError
from scaler.live import GroupAdvice, TickAdvice, advise
from scaler.policy import GroupPolicy, Policy

__all__ = ["Diagnosis", "diagnose"]


class Diagnosis(BaseModel):
    """The group's advice, or why there is none (`unavailable`); never both missing."""

    model_config = ConfigDict(frozen=True)

    tick: TickAdvice | None = None
    unavailable: str | None = None

    @property
    def group(self) -> GroupAdvice | None:
        """The one group's advice, when the diagnosis ran and the group was read."""
        return self.tick.groups[0] if self.tick is not None and self.tick.groups else None


def diagnose(
    policy: Policy, group: GroupPolicy, clients: Clients, *, at: datetime, budget_s: float
) -> Diagnosis:
    """Diagnose `group` as of `at` within `budget_s` seconds; a failure is a Diagnosis too."""
    # A diagnosis reads everything as of the alarm: no cost gate (its memory is of other
    # times, and the queue's depth from SQS is of now, not of `at`).
    live = policy.live.model_copy(update={"full_read_every_minutes": 1})
    one = policy.model_copy(update={"groups": [group], "live": live})
    # The retries stop before the budget does, so a throttling CloudWatch ends in an error,
    # not in a thread still sleeping.
    retry = RetryPolicy(max_attempts=4, max_total_s=budget_s * 0.8, initial_backoff_s=0.2)
    outcome: list[TickAdvice | BaseException] = []

    def work() -> None:
        try:
            outcome.append(advise(one, clients, now=at, retry=retry))
        except Exception as exc:  # fail open: whatever went wrong, the page still goes out
            outcome.append(exc)

    worker = threading.Thread(target=work, name=f"diagnose-{group.name}", daemon=True)
    worker.start()
    worker.join(budget_s)
    if not outcome:
        return Diagnosis(unavailable=f"the diagnosis took longer than its {budget_s:g} s budget")
    result = outcome[0]
    if isinstance(result, BaseException):
        kind = "" if isinstance(result, ScalerError) else f"{type(result).__name__}: "
        return Diagnosis(unavailable=clean(f"{kind}{result}", 300))
    if not result.groups:
        why = result.errors[0].error if result.errors else "the group was not read"
        return Diagnosis(tick=result, unavailable=clean(why, 300))
    return Diagnosis(tick=result)
