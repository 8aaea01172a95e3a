"""The actuator: the one place dry-run is decided and the one caller of SetDesiredCapacity."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from scaler.control.audit import AuditRecord, AwsCall, Mode, RecordedOutcome, Result
from scaler.control.calls import AWS_CALL_ERRORS, classify_aws_error, outcome_unknown
from scaler.control.rails import Rail, RailDecision
from scaler.control.state import StateStore, record_outcome
from scaler.errors import AwsCallError, RetryableAwsError, ScalerError
from scaler.models import EvidenceValue, GroupState, format_time

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient

__all__ = ["ActionResult", "Actuator", "set_desired_capacity_call"]

log = structlog.get_logger(__name__)


class ActionResult(RecordedOutcome):
    """What one capacity act() did."""

    @property
    def call(self) -> AwsCall | None:
        """The exact SetDesiredCapacity call made, or that would be made in dry-run."""
        return self.outcome.call


def set_desired_capacity_call(group: str, target: int, *, honor_cooldown: bool) -> AwsCall:
    """The SetDesiredCapacity call that sets `group` to `target`."""
    return AwsCall(
        service="autoscaling",
        operation="SetDesiredCapacity",
        params={
            "AutoScalingGroupName": group,
            "DesiredCapacity": target,
            "HonorCooldown": honor_cooldown,
        },
    )


class Actuator:
    """Carries out rail decisions: records every one, and calls AWS only in apply mode."""

    def __init__(self, autoscaling: AutoScalingClient, store: StateStore, *, dry_run: bool) -> None:
        self._autoscaling = autoscaling
        self._store = store
        self.dry_run = dry_run

    def mode_for(self, decision: RailDecision) -> Mode:
        """dry-run when the actuator was made so or the kill switch is on; else apply."""
        return "dry-run" if self.dry_run or decision.kill_switch else "apply"

    def act(
        self,
        group: GroupState,
        decision: RailDecision,
        *,
        tick_id: str,
        now: datetime,
        evidence: Mapping[str, EvidenceValue] | None = None,
    ) -> ActionResult:
        """Record the decision; in apply mode set the group's desired capacity, once per tick."""
        call = (
            set_desired_capacity_call(
                group.name, decision.target, honor_cooldown=decision.honor_cooldown
            )
            if decision.target is not None
            else None
        )
        outcome = AuditRecord(
            tick_id=tick_id,
            group=group.name,
            at=now,
            mode=self.mode_for(decision),
            phase="outcome",
            proposal=decision.proposal,
            current=group.desired,
            target=decision.target,
            evidence=dict(evidence or {}),
            rails=[str(r) for r in decision.held_by],
            notes=list(decision.notes),
            call=call,
        )
        try:
            return self._act(group, decision, outcome)
        except ScalerError as exc:
            # The state store failed before any AWS call: never act without a record.
            failed = _finish(outcome, "failed", f"state store: {exc}", _retryable(exc))
            log.error("state_store_failed", group=group.name, tick=tick_id, error=str(exc))
            return ActionResult(outcome=failed, recorded=False)

    def _act(self, group: GroupState, decision: RailDecision, outcome: AuditRecord) -> ActionResult:
        store = self._store
        earlier = [
            r for r in store.audit(group.name, tick_id=outcome.tick_id) if r.phase == "outcome"
        ]
        if earlier:
            return ActionResult(outcome=earlier[-1], duplicate=True)
        # Type changes close their own interrupted intents (control/type_change.py).
        interrupted = [
            self._close_interrupted(intent, group, outcome.at)
            for intent in store.open_intents(group.name)
            if intent.action == "capacity"
        ]
        if same_tick := [r for r in interrupted if r.tick_id == outcome.tick_id]:
            # This very tick died mid-call before: its closed intent is its outcome.
            return ActionResult(outcome=same_tick[-1], duplicate=True, interrupted=interrupted)
        held = _held_here(group, decision, outcome, interrupted)
        if held is not None or outcome.call is None or outcome.mode == "dry-run":
            final = held or _finish(outcome, _no_call_result(decision, outcome), None, None)
            return ActionResult(
                outcome=final, recorded=store.append_audit(final), interrupted=interrupted
            )
        return self._apply(outcome, interrupted)

    def _apply(self, outcome: AuditRecord, interrupted: list[AuditRecord]) -> ActionResult:
        """Intent, call, outcome: a crash between leaves an intent the next tick finds."""
        assert outcome.call is not None
        assert outcome.target is not None
        intent = outcome.model_copy(update={"phase": "intent"})
        if not self._store.append_audit(intent):
            note = "another run of this tick wrote its intent first and owns the call"
            held = outcome.model_copy(update={"result": "held", "notes": [*outcome.notes, note]})
            return ActionResult(outcome=held, duplicate=True, recorded=False)
        params = outcome.call.params
        try:
            self._autoscaling.set_desired_capacity(
                AutoScalingGroupName=str(params["AutoScalingGroupName"]),
                DesiredCapacity=outcome.target,
                HonorCooldown=bool(params["HonorCooldown"]),
            )
        except AWS_CALL_ERRORS as exc:
            error = classify_aws_error(exc, operation="SetDesiredCapacity")
            unknown = outcome_unknown(exc)
            final = _finish(
                outcome, "unknown" if unknown else "failed", str(error), _retryable(error)
            )
            log.warning("set_desired_capacity_failed", group=outcome.group, error=str(error))
        else:
            unknown = False
            final = _finish(outcome, "applied", None, None)
            log.info("set_desired_capacity", group=outcome.group, target=outcome.target)
        # An action that ran, or may have run (no answer), starts the cooldown.
        return self._record_after_call(
            final, started=final.result == "applied" or unknown, interrupted=interrupted
        )

    def _record_after_call(
        self, final: AuditRecord, *, started: bool, interrupted: list[AuditRecord]
    ) -> ActionResult:
        """Record what the call did; if the store fails now the intent stays open for next tick."""
        final, recorded = record_outcome(
            self._store, final, action_target=final.target if started else None
        )
        return ActionResult(outcome=final, recorded=recorded, interrupted=interrupted)

    def _close_interrupted(
        self, intent: AuditRecord, group: GroupState, now: datetime
    ) -> AuditRecord:
        """Close an intent left by a crashed tick, treating its call as possibly made."""
        took = intent.target is not None and group.desired == intent.target
        note = (
            f"tick {intent.tick_id} recorded at {format_time(intent.at)} that it would set "
            f"desired {intent.target} but never recorded the outcome; the group now runs "
            f"{group.desired}, so the call {'took effect' if took else 'may not have run'}; "
            "cooldown counts from that attempt"
        )
        closed = intent.model_copy(
            update={
                "phase": "outcome",
                "at": now,
                "current": group.desired,
                "result": "interrupted",
                "notes": [*intent.notes, note],
            }
        )
        if intent.target is not None:
            self._store.record_action(group.name, at=intent.at, target=intent.target)
        self._store.append_audit(closed)
        log.warning("interrupted_action", group=group.name, tick=intent.tick_id, note=note)
        return closed


def _held_here(
    group: GroupState,
    decision: RailDecision,
    outcome: AuditRecord,
    interrupted: list[AuditRecord],
) -> AuditRecord | None:
    """The actuator's own rails: an interrupted earlier action, or a decision made on old state."""
    if outcome.call is None:
        return None
    if interrupted:
        return _hold(
            outcome, Rail.INTERRUPTED_ACTION, "an earlier tick was interrupted: no action now"
        )
    if decision.current != group.desired:
        return _hold(
            outcome,
            Rail.STALE_DECISION,
            f"the rails assumed desired {decision.current} but the group now runs "
            f"{group.desired}: no action",
        )
    return None


def _hold(outcome: AuditRecord, rail: Rail, note: str) -> AuditRecord:
    return outcome.model_copy(
        update={
            "result": "held",
            "rails": [*outcome.rails, str(rail)],
            "notes": [*outcome.notes, note],
        }
    )


def _no_call_result(decision: RailDecision, outcome: AuditRecord) -> Result:
    if outcome.call is not None:
        return "dry-run"
    return "held" if any(r != Rail.KILL_SWITCH for r in decision.held_by) else "unchanged"


def _finish(
    outcome: AuditRecord, result: Result, error: str | None, retryable: bool | None
) -> AuditRecord:
    return outcome.model_copy(update={"result": result, "error": error, "retryable": retryable})


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, RetryableAwsError) or not isinstance(exc, AwsCallError)
