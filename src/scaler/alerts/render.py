"""The page every destination sends: summary (cause before symptom), severity, facts and links.

`page_summary` is the one place the pager's line is written; `build_page` wraps it with what
each destination needs (dedup key, severity, key numbers, console links, the advice JSON).
Destinations (`alerts.destinations`) only lay the page out in their own format. Called by
`scaler enrich` and the enrich Lambda after `alerts.diagnose`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from scaler.alerts.diagnose import Diagnosis
from scaler.alerts.parse import Alarm, AlarmState
from scaler.alerts.safe import clean
from scaler.live import GroupAdvice
from scaler.models import Finding, Recommendation, Severity
from scaler.policy import GroupPolicy
from scaler.sources.cloudwatch import queue_name_of

__all__ = [
    "SUMMARY_LIMIT",
    "Link",
    "Page",
    "build_page",
    "group_advice",
    "page_summary",
    "state_change_id",
]

#: PagerDuty's limit on payload.summary.
SUMMARY_LIMIT = 1024
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
PageSeverity = Literal["critical", "error", "warning", "info"]
_SEVERITY: dict[Severity, PageSeverity] = {
    Severity.CRITICAL: "critical",
    Severity.WARNING: "warning",
    Severity.INFO: "info",
}


class Link(BaseModel):
    """A link a person can follow from the page."""

    model_config = ConfigDict(frozen=True)

    href: str
    text: str


class Page(BaseModel):
    """One enriched alarm, ready for any destination."""

    model_config = ConfigDict(frozen=True)

    alarm: Alarm
    group: str | None
    asg: str | None = Field(None, description="The group's Auto Scaling group.")
    state: AlarmState
    summary: str = Field(max_length=SUMMARY_LIMIT)
    severity: PageSeverity
    cause: str | None = Field(None, description="The first finding's kind: what is wrong.")
    cause_text: str | None = Field(None, description="That finding's own summary.")
    advice: str | None = Field(None, description="The advice as one line.")
    facts: dict[str, str] = Field(default_factory=dict, description="Key numbers, for fields.")
    links: list[Link] = Field(default_factory=list)
    diagnosis: dict[str, Any] | None = Field(None, description="The advice JSON, when read.")
    unavailable: str | None = Field(None, description="Why there is no diagnosis.")
    dedup_key: str = Field(description="One per alarm and group, across its state changes.")
    change_id: str = Field(description="One per alarm state change: retries share it.")


def ordered_findings(group: GroupAdvice) -> list[Finding]:
    """Findings cause first: by severity, and the backlog (the symptom that pages) last."""
    order = {Severity.CRITICAL: 0, Severity.WARNING: 1}
    return sorted(
        group.advice.findings,
        key=lambda f: (f.kind == "backlog_growing", order.get(f.severity, 2)),
    )


def group_advice(group: GroupAdvice) -> str:
    """The group's advice in the one form every output uses (`Recommendation.summary`):
    '24 × m5.xlarge now (from 8); or 11 × m5d.xlarge (needs the hot I/O moved to local NVMe)'."""
    sized = _sized(group)
    return sized.summary if sized is not None and sized.summary else "no capacity change advised"


def page_summary(
    alarm: Alarm, group: str | None, diagnosis: GroupAdvice | None, unavailable: str | None
) -> str:
    """The pager's line, cause before symptom, at most 1,024 characters.

    'crash-processor: iowait_bound (also ebs_burst_exhaustion, backlog_growing): 24 ×
    m5.xlarge now (from 8); or 11 × m5d.xlarge (needs the hot I/O moved to local NVMe).
    Paged by ALARM crash-backlog.'
    """
    paged = f"{_said(alarm.state)} {alarm.name}"
    where = group or "no group"
    if alarm.state == "OK":
        head = f"RESOLVED {where}: {alarm.name} is OK again"
        return clean(head + (f"; {unavailable}" if unavailable else ""), SUMMARY_LIMIT)
    if diagnosis is None:
        lost = " (the alarm lost its data)" if alarm.state == "INSUFFICIENT_DATA" else ""
        return clean(
            f"{where}: diagnosis unavailable: {unavailable or 'not run'}. Paged by {paged}{lost}: "
            f"{alarm.reason}",
            SUMMARY_LIMIT,
        )
    findings = ordered_findings(diagnosis)
    kinds = list(dict.fromkeys(f.kind for f in findings))
    cause = kinds[0] if kinds else "no named state"
    if len(kinds) > 1:
        cause += f" (also {', '.join(kinds[1:])})"
    lost = ""
    if alarm.state == "INSUFFICIENT_DATA":
        lost = f" The alarm lost its data; scaler read: {_read(diagnosis)}."
    line = f"{where}: {cause}: {group_advice(diagnosis)}.{lost} Paged by {paged}"
    if findings:
        line += f". {findings[0].kind}: {findings[0].summary}"
    return clean(line, SUMMARY_LIMIT)


def state_change_id(alarm: Alarm, group: str | None) -> str:
    """One id per alarm state change (alarm, group, state, time): what retries share."""
    raw = f"{alarm.identity}|{group}|{alarm.state}|{alarm.at.isoformat()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def build_page(
    alarm: Alarm, group: GroupPolicy | None, diagnosis: Diagnosis, *, region: str
) -> Page:
    """The page for `alarm`, from its group's diagnosis (or the reason there is none)."""
    advice = diagnosis.group
    name = group.name if group is not None else None
    findings = ordered_findings(advice) if advice is not None else []
    identity = hashlib.sha256(f"{alarm.identity}|{name}".encode()).hexdigest()[:16]
    return Page(
        alarm=alarm,
        group=name,
        asg=group.asg_name if group is not None else None,
        state=alarm.state,
        summary=page_summary(alarm, name, advice, diagnosis.unavailable),
        severity=_severity(alarm.state, findings),
        cause=findings[0].kind if findings else None,
        cause_text=findings[0].summary if findings else None,
        advice=group_advice(advice) if advice is not None else None,
        facts=_facts(advice) if advice is not None else {},
        links=_links(alarm, group, region),
        diagnosis=diagnosis.tick.advice().to_json_dict() if diagnosis.tick is not None else None,
        unavailable=diagnosis.unavailable,
        dedup_key=f"scaler/{name or 'unmatched'}/{identity}",
        change_id=state_change_id(alarm, name),
    )


def _said(state: AlarmState) -> str:
    return {"ALARM": "ALARM", "OK": "OK", "INSUFFICIENT_DATA": "INSUFFICIENT_DATA"}[state]


def _severity(state: AlarmState, findings: list[Finding]) -> PageSeverity:
    if state == "OK":
        return "info"
    if state == "INSUFFICIENT_DATA":
        return "warning"
    # An alarm in ALARM paged someone: at least an error, critical when a finding says so.
    worst = _SEVERITY.get(findings[0].severity, "error") if findings else "error"
    return "critical" if worst == "critical" else "error"


def _sized(group: GroupAdvice) -> Recommendation | None:
    return next(
        (r for r in reversed(group.advice.recommendations) if r.desired_capacity is not None),
        None,
    )


def _read(group: GroupAdvice) -> str:
    if group.as_of is None:
        return "no queue or instance data in the window"
    return f"data as of {group.as_of:%H:%M} UTC ({group.data_age_minutes} min old)"


def _facts(group: GroupAdvice) -> dict[str, str]:
    state = group.state
    facts = {
        "Desired now": f"{state.desired} × {state.instance_type or 'unknown type'}",
        "In service": str(state.in_service),
        "Advised": str(group.proposal) if group.proposal is not None else "no opinion",
        "Data": _read(group),
    }
    for finding in ordered_findings(group)[:1]:
        for key, label in _FACT_EVIDENCE:
            value = finding.evidence.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                facts[label] = f"{value:,.4g}"
    return facts


# The cause's numbers worth a glance, as the rules name them in their evidence.
_FACT_EVIDENCE = (
    ("cpu_iowait_after_pct", "iowait %"),
    ("cpu_user_after_pct", "CPU user %"),
    ("arrivals_msg_per_min", "Arrivals msg/min"),
    ("throughput_msg_per_min", "Throughput msg/min"),
    ("ebs_mb_s_per_instance", "EBS MB/s per instance"),
    ("ebs_balance_min_pct", "EBS burst balance %"),
)


def _links(alarm: Alarm, group: GroupPolicy | None, region: str) -> list[Link]:
    region = _region_of(alarm) or region
    console = f"https://{region}.console.aws.amazon.com"
    links = []
    if alarm.kind != "alertmanager":
        links.append(
            Link(
                href=f"{console}/cloudwatch/home?region={region}#alarmsV2:alarm/"
                + quote(alarm.name, safe=""),
                text=f"CloudWatch alarm {alarm.name}",
            )
        )
    elif alarm.link:
        links.append(Link(href=alarm.link, text="Alertmanager"))
    if group is not None:
        search = quote(f"{group.asg_name} {queue_name_of(group.queue_name)}", safe="")
        links.append(
            Link(
                href=f"{console}/cloudwatch/home?region={region}#metricsV2?search={search}",
                text=f"CloudWatch metrics of {group.name}",
            )
        )
        links.append(
            Link(
                href=f"{console}/ec2/home?region={region}#AutoScalingGroupDetails:id="
                + quote(group.asg_name, safe="")
                + ";view=details",
                text=f"Auto Scaling group {group.asg_name}",
            )
        )
    return links


def _region_of(alarm: Alarm) -> str | None:
    """The region in the alarm's ARN (SNS's `Region` is a display name, not a code)."""
    parts = (alarm.arn or "").split(":")
    for candidate in (parts[3] if len(parts) > 3 else None, alarm.region):
        if candidate and _REGION.fullmatch(candidate):
            return candidate
    return None
