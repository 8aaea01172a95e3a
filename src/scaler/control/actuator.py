"""The actuators: the one place dry-run is decided, and the only callers of mutating AWS APIs.

Called by the controller once per group and tick, after the rails decided. `RecordingActuator`
owns the sequence every action follows: a re-run of a tick is a duplicate; an intent an
interrupted tick left is closed first; rails seen only at the moment of acting may hold; the
intent is written before any call and the outcome after it, both fenced by the group's lease
so a tick that lost its lease can neither act nor record. Subclasses say only how to apply
(`Actuator`: SetDesiredCapacity here; `TypeChanger`: a launch template version and an
instance refresh, in `type_actuator.py`) and what holds them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from scaler.aws import AWS_CALL_ERRORS, classify_aws_error, outcome_unknown, read_answer
from scaler.control.audit import Action, AuditRecord, AwsCall, Mode, RecordedOutcome, Result
from scaler.control.rails import Rail, RailDecision
from scaler.control.store import Lease, StateStore
from scaler.errors import AwsCallError, RetryableAwsError, ScalerError
from scaler.logs import get_logger
from scaler.models import EvidenceValue, GroupState, format_time

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient

__all__ = [
    "ActionResult",
    "Actuator",
    "RecordingActuator",
    "record_outcome",
    "set_desired_capacity_call",
]

log = get_logger(__name__)

DecisionT = TypeVar("DecisionT")
ResultT = TypeVar("ResultT", bound=RecordedOutcome)


def record_outcome(
    store: StateStore,
    final: AuditRecord,
    *,
    action_target: int | None,
    fence: Lease | None = None,
) -> tuple[AuditRecord, bool]:
    """Write an outcome after an AWS call: the action (if one started) then the record.

    `action_target` is the desired capacity an action that ran, or may have run, left the group
    at (it starts the cooldown); None when nothing started. If the store fails now (or the
    lease was lost), the outcome says so and the intent stays open for the next tick to find.
    Returns (outcome, recorded).
    """
    try:
        if action_target is not None:
            store.record_action(final.group, at=final.at, target=action_target, fence=fence)
        return final, store.append_audit(final, fence=fence)
    except ScalerError as exc:
        log.error("outcome_not_recorded", group=final.group, tick=final.tick_id, error=str(exc))
        note = f"outcome not recorded ({exc}); the next tick will find the open intent"
        return final.model_copy(update={"notes": [*final.notes, note]}), False


class RecordingActuator(Generic[DecisionT, ResultT]):
    """Records every decision; calls AWS only in apply mode, once per tick, under the lease."""

    #: Which audit records are this actuator's (capacity and type changes are kept apart).
    action: ClassVar[Action]
    #: The result type act() returns.
    result_type: type[ResultT]

    def __init__(
        self, store: StateStore, *, dry_run: bool, deadline: threading.Event | None = None
    ) -> None:
        self._store = store
        self.dry_run = dry_run
        # Set when too little time is left to finish an action (Lambda's deadline): no intent
        # is written after it, so no call can outlive the invocation.
        self._deadline = deadline

    # What a subclass says: the record it would write, how it applies, what holds it.

    def outcome_for(
        self,
        group: GroupState,
        decision: DecisionT,
        *,
        tick_id: str,
        now: datetime,
        evidence: dict[str, EvidenceValue],
    ) -> AuditRecord:
        """The outcome record this decision would write, before anything is done."""
        raise NotImplementedError

    def held_when_acting(
        self, group: GroupState, decision: DecisionT, outcome: AuditRecord
    ) -> AuditRecord | None:
        """A rail only the moment of acting sees (a decision made on an older state), or None."""
        raise NotImplementedError

    def no_call_result(self, decision: DecisionT, outcome: AuditRecord) -> Result:
        """The result of a decision that makes no call: dry-run, held or unchanged."""
        raise NotImplementedError

    def apply(
        self, outcome: AuditRecord, interrupted: list[AuditRecord], fence: Lease | None
    ) -> ResultT:
        """Write the intent (`write_intent`), make the calls, record (`record_after_call`)."""
        raise NotImplementedError

    def interrupted_note(self, intent: AuditRecord, group: GroupState) -> tuple[str, bool]:
        """What an intent a crashed tick left means now, and whether its call took effect."""
        raise NotImplementedError

    # The sequence, shared.

    def act(
        self,
        group: GroupState,
        decision: DecisionT,
        *,
        tick_id: str,
        now: datetime,
        evidence: Mapping[str, EvidenceValue] | None = None,
        fence: Lease | None = None,
    ) -> ResultT:
        """Record the decision; in apply mode carry it out, once per tick."""
        outcome = self.outcome_for(
            group, decision, tick_id=tick_id, now=now, evidence=dict(evidence or {})
        )
        try:
            return self._act(group, decision, outcome, fence)
        except ScalerError as exc:
            # The state store failed (or the lease was lost) before any AWS call: never act
            # without a record.
            failed = finish(outcome, "failed", f"state store: {exc}", retryable(exc))
            log.error("state_store_failed", group=group.key, tick=tick_id, error=str(exc))
            return self.result_type(outcome=failed, recorded=False)

    def _act(
        self,
        group: GroupState,
        decision: DecisionT,
        outcome: AuditRecord,
        fence: Lease | None,
    ) -> ResultT:
        store = self._store
        earlier = [
            r for r in store.audit(group.key, tick_id=outcome.tick_id) if r.phase == "outcome"
        ]
        if earlier:
            return self.result_type(outcome=earlier[-1], duplicate=True)
        interrupted = [
            self._close_interrupted(intent, group, outcome.at, fence)
            for intent in store.open_intents(group.key)
            if intent.action == self.action
        ]
        if same_tick := [r for r in interrupted if r.tick_id == outcome.tick_id]:
            # This very tick died mid-call before: its closed intent is its outcome.
            return self.result_type(outcome=same_tick[-1], duplicate=True, interrupted=interrupted)
        held = self._held(group, decision, outcome, interrupted)
        if held is not None or not _calls(outcome) or outcome.mode == "dry-run":
            final = held or finish(outcome, self.no_call_result(decision, outcome), None, None)
            recorded = store.append_audit(final, fence=fence)
            return self.result_type(outcome=final, recorded=recorded, interrupted=interrupted)
        return self.apply(outcome, interrupted, fence)

    def _held(
        self,
        group: GroupState,
        decision: DecisionT,
        outcome: AuditRecord,
        interrupted: list[AuditRecord],
    ) -> AuditRecord | None:
        if not _calls(outcome):
            return None
        if interrupted:
            return hold(
                outcome, Rail.INTERRUPTED_ACTION, "an earlier tick was interrupted: no action now"
            )
        return self.held_when_acting(group, decision, outcome)

    def write_intent(self, outcome: AuditRecord, fence: Lease | None) -> ResultT | None:
        """Write the intent before any call; a result instead if the call must not be made."""
        if self._deadline is not None and self._deadline.is_set():
            note = "a stop came (SIGTERM, or the deadline is near) before this action: none started"
            held = hold(outcome, Rail.DEADLINE, note)
            recorded = self._store.append_audit(held, fence=fence)
            return self.result_type(outcome=held, recorded=recorded)
        intent = outcome.model_copy(update={"phase": "intent"})
        if self._store.append_audit(intent, fence=fence):
            return None
        note = "another run of this tick wrote its intent first and owns the call"
        held = outcome.model_copy(update={"result": "held", "notes": [*outcome.notes, note]})
        return self.result_type(outcome=held, duplicate=True, recorded=False)

    def failed(
        self, outcome: AuditRecord, exc: Exception, operation: str, left: str | None = None
    ) -> AuditRecord:
        """The outcome of a call AWS refused or never answered, and what it left behind."""
        error = classify_aws_error(exc, operation=operation)
        result: Result = "unknown" if outcome_unknown(exc) else "failed"
        log.warning("aws_action_failed", group=outcome.group, error=str(error), left=left)
        final = finish(outcome, result, str(error), retryable(error))
        return final.model_copy(update={"notes": [*final.notes, left]}) if left else final

    def record_after_call(
        self,
        final: AuditRecord,
        *,
        action_target: int | None,
        interrupted: list[AuditRecord],
        fence: Lease | None,
    ) -> ResultT:
        """Record what the call did; if the store fails now the intent stays open for next tick."""
        final, recorded = record_outcome(
            self._store, final, action_target=action_target, fence=fence
        )
        return self.result_type(outcome=final, recorded=recorded, interrupted=interrupted)

    def _close_interrupted(
        self, intent: AuditRecord, group: GroupState, now: datetime, fence: Lease | None
    ) -> AuditRecord:
        """Close an intent a crashed tick left; only a call that took effect starts a cooldown."""
        note, took = self.interrupted_note(intent, group)
        closed = intent.model_copy(
            update={
                "phase": "outcome",
                "at": now,
                "current": group.desired,
                "result": "interrupted",
                "notes": [*intent.notes, note],
            }
        )
        if took:
            self._store.record_action(group.key, at=intent.at, target=group.desired, fence=fence)
        self._store.append_audit(closed, fence=fence)
        log.warning("interrupted_action", group=group.key, tick=intent.tick_id, note=note)
        return closed


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


class Actuator(RecordingActuator[RailDecision, ActionResult]):
    """Carries out capacity decisions: the one caller of SetDesiredCapacity."""

    action = "capacity"
    result_type = ActionResult

    def __init__(
        self,
        autoscaling: AutoScalingClient,
        store: StateStore,
        *,
        dry_run: bool,
        deadline: threading.Event | None = None,
    ) -> None:
        super().__init__(store, dry_run=dry_run, deadline=deadline)
        self._autoscaling = autoscaling

    def mode_for(self, decision: RailDecision) -> Mode:
        """dry-run when the actuator was made so or the kill switch is on; else apply."""
        return "dry-run" if self.dry_run or decision.kill_switch else "apply"

    def outcome_for(
        self,
        group: GroupState,
        decision: RailDecision,
        *,
        tick_id: str,
        now: datetime,
        evidence: dict[str, EvidenceValue],
    ) -> AuditRecord:
        call = (
            set_desired_capacity_call(
                group.name, decision.target, honor_cooldown=decision.honor_cooldown
            )
            if decision.target is not None
            else None
        )
        return AuditRecord(
            tick_id=tick_id,
            group=group.key,  # the state key: one name in two accounts or regions is two groups
            at=now,
            mode=self.mode_for(decision),
            phase="outcome",
            proposal=decision.proposal,
            current=group.desired,
            target=decision.target,
            evidence=evidence,
            rails=[str(r) for r in decision.held_by],
            notes=list(decision.notes),
            call=call,
        )

    def held_when_acting(
        self, group: GroupState, decision: RailDecision, outcome: AuditRecord
    ) -> AuditRecord | None:
        if decision.current != group.desired:
            return hold(
                outcome,
                Rail.STALE_DECISION,
                f"the rails assumed desired {decision.current} but the group now runs "
                f"{group.desired}: no action",
            )
        return None

    def no_call_result(self, decision: RailDecision, outcome: AuditRecord) -> Result:
        if outcome.call is not None:
            return "dry-run"
        return "held" if any(r != Rail.KILL_SWITCH for r in decision.held_by) else "unchanged"

    def apply(
        self, outcome: AuditRecord, interrupted: list[AuditRecord], fence: Lease | None
    ) -> ActionResult:
        """Intent, call, outcome: a crash between leaves an intent the next tick finds."""
        assert outcome.call is not None and outcome.target is not None
        if (duplicate := self.write_intent(outcome, fence)) is not None:
            return duplicate
        params = outcome.call.params
        try:
            read_answer(
                self._autoscaling.set_desired_capacity,
                AutoScalingGroupName=str(params["AutoScalingGroupName"]),
                DesiredCapacity=outcome.target,
                HonorCooldown=bool(params["HonorCooldown"]),
            )
        except AWS_CALL_ERRORS as exc:
            final = self.failed(outcome, exc, "SetDesiredCapacity")
        else:
            final = finish(outcome, "applied", None, None)
            log.info("set_desired_capacity", group=outcome.group, target=outcome.target)
        # An action that ran, or may have run (no answer), starts the cooldown.
        started = final.result in ("applied", "unknown")
        return self.record_after_call(
            final,
            action_target=final.target if started else None,
            interrupted=interrupted,
            fence=fence,
        )

    def interrupted_note(self, intent: AuditRecord, group: GroupState) -> tuple[str, bool]:
        took = intent.target is not None and group.desired == intent.target
        note = (
            f"tick {intent.tick_id} recorded at {format_time(intent.at)} that it would set "
            f"desired {intent.target} but never recorded the outcome; the group now runs "
            f"{group.desired}, so the call "
            + (
                "took effect; cooldown counts from that attempt"
                if took
                else "did not take effect (never made, or refused): no cooldown"
            )
        )
        return note, took


def _calls(outcome: AuditRecord) -> bool:
    return outcome.call is not None or bool(outcome.calls)


def hold(outcome: AuditRecord, rail: Rail, note: str) -> AuditRecord:
    """The outcome held by `rail`, with its note."""
    return outcome.model_copy(
        update={
            "result": "held",
            "rails": [*outcome.rails, str(rail)],
            "notes": [*outcome.notes, note],
        }
    )


def finish(
    outcome: AuditRecord, result: Result, error: str | None, retryable: bool | None
) -> AuditRecord:
    """The outcome with its result (and error, if any)."""
    return outcome.model_copy(update={"result": result, "error": error, "retryable": retryable})


def retryable(exc: Exception) -> bool:
    """Whether a failure is worth the next tick: AWS's retryable ones, and the store's."""
    return isinstance(exc, RetryableAwsError) or not isinstance(exc, AwsCallError)
