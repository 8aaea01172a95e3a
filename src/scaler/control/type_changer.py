"""Applying a type change: intent, CreateLaunchTemplateVersion, StartInstanceRefresh, outcome."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from scaler.control.audit import AuditRecord, AwsCall, Mode, RecordedOutcome, Result
from scaler.control.calls import AWS_CALL_ERRORS, classify_aws_error, outcome_unknown
from scaler.control.rails import Rail
from scaler.control.state import StateStore, record_outcome
from scaler.control.type_change import TypeChangeDecision, type_change_tick_id
from scaler.errors import AwsCallError, RetryableAwsError, ScalerError
from scaler.models import EvidenceValue, GroupState, format_time

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ec2 import EC2Client

__all__ = ["TypeChangeResult", "TypeChanger"]

log = structlog.get_logger(__name__)
# Rails that make no call but leave nothing undone: the result reads "unchanged", not "held".
# How far back (audit records of the group) a version left by a failed refresh is looked for.
_LOOKBACK = 50
_BENIGN = frozenset({Rail.KILL_SWITCH, Rail.TYPE_CHANGE_DISABLED, Rail.SAME_TYPE})


class TypeChangeResult(RecordedOutcome):
    """What one TypeChanger.act() did, with the version and refresh it made."""

    @property
    def calls(self) -> list[AwsCall]:
        """The calls made, or that would be made in dry-run."""
        return self.outcome.calls

    @property
    def launch_template_version(self) -> int | None:
        """The launch template version this change created (or reused), if any."""
        version = self.outcome.created.get("launch_template_version")
        return int(version) if version is not None else None

    @property
    def instance_refresh_id(self) -> str | None:
        """The InstanceRefreshId AWS returned, if the refresh started."""
        return self.outcome.created.get("instance_refresh_id")


class TypeChanger:
    """Carries out type change decisions: records every one, calls AWS only in apply mode."""

    def __init__(
        self, autoscaling: AutoScalingClient, ec2: EC2Client, store: StateStore, *, dry_run: bool
    ) -> None:
        self._autoscaling = autoscaling
        self._ec2 = ec2
        self._store = store
        self.dry_run = dry_run

    def mode_for(self, decision: TypeChangeDecision) -> Mode:
        """dry-run if made so, under the kill switch, or with type_change.apply off; else apply."""
        return (
            "dry-run" if self.dry_run or decision.kill_switch or not decision.enabled else "apply"
        )

    def act(
        self,
        group: GroupState,
        decision: TypeChangeDecision,
        *,
        tick_id: str,
        now: datetime,
        evidence: Mapping[str, EvidenceValue] | None = None,
    ) -> TypeChangeResult:
        """Record the decision; in apply mode create the version and start the refresh, once."""
        outcome = AuditRecord(
            tick_id=type_change_tick_id(tick_id),
            group=group.name,
            at=now,
            mode=self.mode_for(decision),
            phase="outcome",
            current=group.desired,
            evidence=dict(evidence or {}),
            rails=[str(r) for r in decision.held_by],
            notes=list(decision.notes),
            action="instance_type",
            calls=list(decision.calls),
            current_type=decision.current_type,
            target_type=decision.new_type,
        )
        try:
            return self._act(group, decision, outcome)
        except ScalerError as exc:
            # The state store failed before any AWS call: never act without a record.
            failed = _finish(outcome, "failed", f"state store: {exc}", _retryable(exc))
            log.error("state_store_failed", group=group.name, tick=tick_id, error=str(exc))
            return TypeChangeResult(outcome=failed, recorded=False)

    def _act(
        self, group: GroupState, decision: TypeChangeDecision, outcome: AuditRecord
    ) -> TypeChangeResult:
        store = self._store
        earlier = [
            r for r in store.audit(group.name, tick_id=outcome.tick_id) if r.phase == "outcome"
        ]
        if earlier:
            return TypeChangeResult(outcome=earlier[-1], duplicate=True)
        interrupted = [
            self._close_interrupted(intent, group, outcome.at)
            for intent in store.open_intents(group.name)
            if intent.action == "instance_type"
        ]
        if same_tick := [r for r in interrupted if r.tick_id == outcome.tick_id]:
            return TypeChangeResult(outcome=same_tick[-1], duplicate=True, interrupted=interrupted)
        held = _held_here(group, decision, outcome, interrupted)
        if held is not None or not outcome.calls or outcome.mode == "dry-run":
            final = held or _finish(outcome, _no_call_result(decision), None, None)
            return TypeChangeResult(
                outcome=final, recorded=store.append_audit(final), interrupted=interrupted
            )
        return self._apply(outcome, interrupted)

    def _apply(self, outcome: AuditRecord, interrupted: list[AuditRecord]) -> TypeChangeResult:
        """Intent, calls, outcome: a crash between leaves an intent the next tick finds."""
        create, start = outcome.calls
        source = str(create.params["SourceVersion"])
        reused = self._left_behind(outcome, create)
        if reused is not None:
            note = (
                f"reusing launch template version {reused}, made by an earlier tick whose "
                "refresh never started"
            )
            planned = [_with_version(start, reused)]
            outcome = outcome.model_copy(update={"calls": planned, "notes": [*outcome.notes, note]})
        intent = outcome.model_copy(update={"phase": "intent"})
        if not self._store.append_audit(intent):
            note = "another run of this tick wrote its intent first and owns the calls"
            held = outcome.model_copy(update={"result": "held", "notes": [*outcome.notes, note]})
            return TypeChangeResult(outcome=held, duplicate=True, recorded=False)
        if reused is not None:
            version, calls = reused, []
        else:
            try:
                version, calls = self._create_version(create), [create]
            except AWS_CALL_ERRORS as exc:
                final = self._failed(
                    outcome,
                    exc,
                    "CreateLaunchTemplateVersion",
                    "a launch template version may exist (no answer): check the template"
                    if outcome_unknown(exc)
                    else "no launch template version was created and no refresh started",
                )
                # Nothing reached the group: no cooldown.
                return self._record_after_calls(final, started=False, interrupted=interrupted)
        made = _with_version(start, version)
        calls.append(made)
        created = {"launch_template_version": version, "source_version": source}
        try:
            answer = self._autoscaling.start_instance_refresh(**_kwargs(made))
        except AWS_CALL_ERRORS as exc:
            unknown = outcome_unknown(exc)
            new_type = outcome.target_type
            left = f"launch template version {version} ({new_type}) exists, " + (
                "and the refresh may have started (no answer): check DescribeInstanceRefreshes"
                if unknown
                else "but no instance refresh started: the group still launches its old "
                "version; a later tick reuses this version"
            )
            final = self._failed(outcome, exc, "StartInstanceRefresh", left)
            final = final.model_copy(update={"calls": calls, "created": created})
            return self._record_after_calls(final, started=unknown, interrupted=interrupted)
        created["instance_refresh_id"] = answer["InstanceRefreshId"]
        log.info(
            "instance_refresh_started",
            group=outcome.group,
            instance_type=outcome.target_type,
            **created,
        )
        final = _finish(outcome, "applied", None, None).model_copy(
            update={"calls": calls, "created": created}
        )
        return self._record_after_calls(final, started=True, interrupted=interrupted)

    def _left_behind(self, outcome: AuditRecord, create: AwsCall) -> str | None:
        """A version a failed earlier change made from the same source for the same type."""
        for record in reversed(self._store.audit(outcome.group, limit=_LOOKBACK)):
            version = record.created.get("launch_template_version")
            if record.action != "instance_type" or record.phase != "outcome" or version is None:
                continue
            same = (
                record.result == "failed"
                and "instance_refresh_id" not in record.created
                and record.target_type == outcome.target_type
                and record.created.get("source_version") == create.params["SourceVersion"]
                and _template_of(record.calls[-1]) == _template_of(outcome.calls[-1])
            )
            return version if same and self._still_there(create, version) else None
        return None

    def _still_there(self, create: AwsCall, version: str) -> bool:
        """True when the template still has `version`, with the type the change asks for."""
        which: Any = {
            k: v
            for k, v in create.params.items()
            if k in ("LaunchTemplateId", "LaunchTemplateName")
        }
        try:
            answer = self._ec2.describe_launch_template_versions(Versions=[version], **which)
        except AWS_CALL_ERRORS as exc:
            log.info("left_behind_version_unreadable", version=version, error=str(exc))
            return False
        found = answer.get("LaunchTemplateVersions", [])
        wanted = create.params["LaunchTemplateData"]
        return bool(found) and found[0].get("LaunchTemplateData", {}).get("InstanceType") == (
            wanted.get("InstanceType") if isinstance(wanted, dict) else None
        )

    def _create_version(self, call: AwsCall) -> str:
        """Make the launch template version; its number, as DesiredConfiguration wants it."""
        answer = self._ec2.create_launch_template_version(**_kwargs(call))
        return str(answer["LaunchTemplateVersion"]["VersionNumber"])

    def _failed(
        self, outcome: AuditRecord, exc: Exception, operation: str, left: str
    ) -> AuditRecord:
        error = classify_aws_error(exc, operation=operation)
        result: Result = "unknown" if outcome_unknown(exc) else "failed"
        log.warning("type_change_failed", group=outcome.group, error=str(error), left=left)
        final = _finish(outcome, result, str(error), _retryable(error))
        return final.model_copy(update={"notes": [*final.notes, left]})

    def _record_after_calls(
        self, final: AuditRecord, *, started: bool, interrupted: list[AuditRecord]
    ) -> TypeChangeResult:
        """Record what the calls did; if the store fails now the intent stays open for next tick."""
        # A refresh that ran, or may have run, starts the cooldown; desired is unchanged.
        final, recorded = record_outcome(
            self._store, final, action_target=final.current if started else None
        )
        return TypeChangeResult(outcome=final, recorded=recorded, interrupted=interrupted)

    def _close_interrupted(
        self, intent: AuditRecord, group: GroupState, now: datetime
    ) -> AuditRecord:
        """Close a type change intent a crashed tick left, treating its calls as possibly made."""
        note = (
            f"tick {intent.tick_id} recorded at {format_time(intent.at)} that it would change the "
            f"type to {intent.target_type} but never recorded the outcome: a launch template "
            "version and an instance refresh may exist (check DescribeInstanceRefreshes); "
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
        self._store.record_action(group.name, at=intent.at, target=group.desired)
        self._store.append_audit(closed)
        log.warning("interrupted_type_change", group=group.name, tick=intent.tick_id, note=note)
        return closed


def _kwargs(call: AwsCall) -> Any:
    """The recorded params as the boto3 call's keyword arguments: what is sent is what is logged."""
    return call.model_dump()["params"]  # a deep copy: botocore never touches the record


def _template_of(start: AwsCall) -> Any:
    """The template a StartInstanceRefresh names, without its version."""
    params = start.model_dump()["params"]
    template = dict(params.get("DesiredConfiguration", {}).get("LaunchTemplate", {}))
    template.pop("Version", None)
    return template


def _with_version(call: AwsCall, version: str) -> AwsCall:
    """The planned StartInstanceRefresh with NEW_VERSION replaced by the real version number."""
    params = call.model_dump()["params"]
    params["DesiredConfiguration"]["LaunchTemplate"]["Version"] = version
    return call.model_copy(update={"params": params})


def _held_here(
    group: GroupState,
    decision: TypeChangeDecision,
    outcome: AuditRecord,
    interrupted: list[AuditRecord],
) -> AuditRecord | None:
    """Rails seen only when acting: an interrupted change, or a plan made on an old state."""
    if not outcome.calls:
        return None
    if interrupted:
        return _hold(
            outcome, Rail.INTERRUPTED_ACTION, "an earlier type change was interrupted: no action"
        )
    now_sees = (group.name, group.instance_type, group.launch_template, group.desired)
    planned = (decision.group, decision.current_type, decision.launch_template, decision.desired)
    if now_sees != planned:
        return _hold(
            outcome,
            Rail.STALE_DECISION,
            f"the plan assumed group {planned[0]}, type {planned[1]}, template {planned[2]}, "
            f"desired {planned[3]}, but acting sees {now_sees[0]}, {now_sees[1]}, "
            f"{now_sees[2]}, {now_sees[3]}: no action",
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


def _no_call_result(decision: TypeChangeDecision) -> Result:
    if decision.calls:
        return "dry-run"
    return "unchanged" if set(decision.held_by) <= _BENIGN else "held"


def _finish(
    outcome: AuditRecord, result: Result, error: str | None, retryable: bool | None
) -> AuditRecord:
    return outcome.model_copy(update={"result": result, "error": error, "retryable": retryable})


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, RetryableAwsError) or not isinstance(exc, AwsCallError)
