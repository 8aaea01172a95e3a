"""Applying a type change: intent, CreateLaunchTemplateVersion, StartInstanceRefresh, outcome.

Called by the controller with the plan from `type_rails.plan_type_change`; the recording
sequence (duplicates, interrupted intents, fenced intent and outcome) is the base's, in
`actuator.py`.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.parsers import ResponseParserError

from scaler.aws import AWS_CALL_ERRORS, outcome_unknown, read_answer
from scaler.control.actuator import RecordingActuator, finish, hold
from scaler.control.audit import AuditRecord, AwsCall, Mode, RecordedOutcome, Result
from scaler.control.rails import Rail
from scaler.control.store import Lease, StateStore
from scaler.control.type_rails import TypeChangeDecision, type_change_tick_id
from scaler.logs import get_logger
from scaler.models import EvidenceValue, GroupState, format_time

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ec2 import EC2Client

__all__ = ["TypeChangeResult", "TypeChanger"]

log = get_logger(__name__)
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


class TypeChanger(RecordingActuator[TypeChangeDecision, TypeChangeResult]):
    """Carries out type change decisions: CreateLaunchTemplateVersion, StartInstanceRefresh."""

    action = "instance_type"
    result_type = TypeChangeResult

    def __init__(
        self,
        autoscaling: AutoScalingClient,
        ec2: EC2Client,
        store: StateStore,
        *,
        dry_run: bool,
        deadline: threading.Event | None = None,
    ) -> None:
        super().__init__(store, dry_run=dry_run, deadline=deadline)
        self._autoscaling = autoscaling
        self._ec2 = ec2

    def mode_for(self, decision: TypeChangeDecision) -> Mode:
        """dry-run if made so, under the kill switch, or with type_change.apply off; else apply."""
        return (
            "dry-run" if self.dry_run or decision.kill_switch or not decision.enabled else "apply"
        )

    def outcome_for(
        self,
        group: GroupState,
        decision: TypeChangeDecision,
        *,
        tick_id: str,
        now: datetime,
        evidence: dict[str, EvidenceValue],
    ) -> AuditRecord:
        return AuditRecord(
            tick_id=type_change_tick_id(tick_id),
            group=group.key,  # the state key, as the capacity actuator's
            at=now,
            mode=self.mode_for(decision),
            phase="outcome",
            current=group.desired,
            evidence=evidence,
            rails=[str(r) for r in decision.held_by],
            notes=list(decision.notes),
            action="instance_type",
            calls=list(decision.calls),
            current_type=decision.current_type,
            target_type=decision.new_type,
        )

    def held_when_acting(
        self, group: GroupState, decision: TypeChangeDecision, outcome: AuditRecord
    ) -> AuditRecord | None:
        now_sees = (group.name, group.instance_type, group.launch_template, group.desired)
        planned = (
            decision.group,
            decision.current_type,
            decision.launch_template,
            decision.desired,
        )
        if now_sees != planned:
            return hold(
                outcome,
                Rail.STALE_DECISION,
                f"the plan assumed group {planned[0]}, type {planned[1]}, template {planned[2]}, "
                f"desired {planned[3]}, but acting sees {now_sees[0]}, {now_sees[1]}, "
                f"{now_sees[2]}, {now_sees[3]}: no action",
            )
        return None

    def no_call_result(self, decision: TypeChangeDecision, outcome: AuditRecord) -> Result:
        if decision.calls:
            return "dry-run"
        return "unchanged" if set(decision.held_by) <= _BENIGN else "held"

    def apply(
        self, outcome: AuditRecord, interrupted: list[AuditRecord], fence: Lease | None
    ) -> TypeChangeResult:
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
        if (duplicate := self.write_intent(outcome, fence)) is not None:
            return duplicate
        if reused is not None:
            version, calls = reused, []
        else:
            try:
                version, calls = self._create_version(create), [create]
            except AWS_CALL_ERRORS as exc:
                final = self.failed(
                    outcome,
                    exc,
                    "CreateLaunchTemplateVersion",
                    "a launch template version may exist (no answer): check the template"
                    if outcome_unknown(exc)
                    else "no launch template version was created and no refresh started",
                )
                # Nothing reached the group: no cooldown.
                return self.record_after_call(
                    final, action_target=None, interrupted=interrupted, fence=fence
                )
        made = _with_version(start, version)
        calls.append(made)
        created = {"launch_template_version": version, "source_version": source}
        try:
            answer = read_answer(self._autoscaling.start_instance_refresh, **_kwargs(made))
            refresh_id = answer.get("InstanceRefreshId")
            if not refresh_id:
                raise ResponseParserError(
                    "StartInstanceRefresh answered without an InstanceRefreshId"
                )
        except AWS_CALL_ERRORS as exc:
            unknown = outcome_unknown(exc)
            new_type = outcome.target_type
            left = f"launch template version {version} ({new_type}) exists, " + (
                "and the refresh may have started (no answer): check DescribeInstanceRefreshes"
                if unknown
                else "but no instance refresh started: the group still launches its old "
                "version; a later tick reuses this version"
            )
            final = self.failed(outcome, exc, "StartInstanceRefresh", left)
            final = final.model_copy(update={"calls": calls, "created": created})
            # A refresh that may have run starts the cooldown; desired is unchanged.
            return self.record_after_call(
                final,
                action_target=final.current if unknown else None,
                interrupted=interrupted,
                fence=fence,
            )
        created["instance_refresh_id"] = refresh_id
        log.info(
            "instance_refresh_started",
            group=outcome.group,
            instance_type=outcome.target_type,
            **created,
        )
        final = finish(outcome, "applied", None, None).model_copy(
            update={"calls": calls, "created": created}
        )
        return self.record_after_call(
            final, action_target=final.current, interrupted=interrupted, fence=fence
        )

    def interrupted_note(self, intent: AuditRecord, group: GroupState) -> tuple[str, bool]:
        # A refresh running now is the one that tick started (the rails allow only one).
        took = group.instance_refresh_in_progress
        note = (
            f"tick {intent.tick_id} recorded at {format_time(intent.at)} that it would change the "
            f"type to {intent.target_type} but never recorded the outcome: a launch template "
            "version may exist; "
            + (
                "an instance refresh is running, so cooldown counts from that attempt"
                if took
                else "no instance refresh is running, so the refresh never started: no cooldown"
            )
        )
        return note, took

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
            answer = read_answer(
                self._ec2.describe_launch_template_versions, Versions=[version], **which
            )
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
        answer = read_answer(self._ec2.create_launch_template_version, **_kwargs(call))
        number = answer.get("LaunchTemplateVersion", {}).get("VersionNumber")
        if number is None:
            raise ResponseParserError("CreateLaunchTemplateVersion answered without a version")
        return str(number)


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
