"""The policy group an alarm concerns: by its metrics' dimensions, its child alarms, or labels,
in the account and region the alarm says it is in.

- Metric, metric-math and anomaly alarms: an `AutoScalingGroupName` or `QueueName` dimension on
  any of the alarm's metrics (a math expression's sub-metrics carry them).
- Composite alarms: the same, through the child alarms its rule names, read with
  `cloudwatch:DescribeAlarms`; when they cannot be read the error says why.
- Alertmanager alerts: the labels the policy's `alerts.labels` names (default `group`, `asg`,
  `queue`, and `account` and `region` for where).

One ASG or queue name can be in several accounts and regions (`accounts:`): a group matches
only where the alarm says it fired (its ARN's account and region, a cross-account metric's
`AccountId`, the labels). Several groups left and the alarm silent on what tells them apart is
an InputError naming each (`account/region/ASG`): a page never carries another group's diagnosis.

Called by `scaler enrich` and the enrich Lambda after `alerts.parse`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from scaler.alerts import fields
from scaler.alerts.parse import Alarm, MetricRef
from scaler.alerts.safe import clean
from scaler.aws import call_aws
from scaler.errors import InputError, ScalerError
from scaler.models import Place
from scaler.policy import GroupPolicy, Policy
from scaler.sources.cloudwatch import queue_name_of

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

__all__ = ["OwnAccount", "child_metrics", "group_for_alarm"]

#: Scaler's own account id, asked only when an alarm's account must be told from it.
OwnAccount = Callable[[], str]

#: DescribeAlarms takes at most 100 names.
_MAX_CHILDREN = 100


def group_for_alarm(
    alarm: Alarm,
    policy: Policy,
    *,
    cloudwatch: CloudWatchClient | None = None,
    labels: Mapping[str, str] | None = None,
    default_region: str | None = None,
    own_account: OwnAccount | None = None,
) -> GroupPolicy:
    """The group `alarm` concerns; InputError (or AwsCallError for children) saying why not.

    `default_region` is the region of a group that names none (scaler's clients' region, as in
    the live tick); `own_account` tells whether an alarm's account is scaler's own, where a
    group that names no account is. Unknown, neither rules a group out.
    """
    places = _Places(policy, default_region, own_account)
    if alarm.kind == "alertmanager":
        return _by_labels(alarm, policy, labels or {}, places)
    metrics = alarm.metrics
    if alarm.kind == "composite":
        if not alarm.children:
            raise InputError(
                f"composite alarm {alarm.name!r} names no child alarm scaler can read in its "
                f"rule ({alarm.rule or 'no rule sent'}): alarm on the group's own metrics instead"
            )
        if cloudwatch is None:
            raise InputError(
                f"composite alarm {alarm.name!r}: its children ({', '.join(alarm.children)}) "
                "need cloudwatch:DescribeAlarms to be read"
            )
        metrics = child_metrics(alarm, cloudwatch)
    # Where each metric is: a cross-account alarm names its metric's account; else the alarm's.
    wheres = [Place(account=m.account or alarm.account, region=alarm.region) for m in metrics]
    named = [
        (group, [w for m, w in zip(metrics, wheres, strict=True) if _names(m, group)])
        for group in policy.groups
    ]
    dims = ", ".join(dict.fromkeys(f"{k}={v}" for m in metrics for k, v in m.dimensions.items()))
    via = " (through its child alarms)" if alarm.kind == "composite" else ""
    said = f"alarm {alarm.name!r} ({dims or 'no dimensions'}){via}"
    return _choose(
        said,
        [(g, w) for g, ws in named for w in ws],
        list(dict.fromkeys(wheres)),
        places,
        how="match an AutoScalingGroupName or QueueName dimension",
        lacking="send the notification as CloudWatch sends it (its AlarmArn names the account "
        "and region)",
    )


class _Places:
    """Where each group is (as the live tick places it), against where an alarm says it fired."""

    def __init__(
        self, policy: Policy, default_region: str | None, own_account: OwnAccount | None
    ) -> None:
        self.policy = policy
        self.default_region = default_region
        self._ask_own = own_account
        self._own: list[str] = []  # asked at most once per alarm

    def account(self, group: GroupPolicy) -> str | None:
        """The group's account; None: scaler's own, not asked (or not known)."""
        return group.account or (self._own[0] if self._own else None)

    def region(self, group: GroupPolicy) -> str | None:
        """The group's region; None: scaler's own, not known here."""
        return group.region or self.default_region

    def holds(self, group: GroupPolicy, where: Place) -> bool:
        """Whether `group` can be where an alarm says it fired (unsaid parts rule nothing out)."""
        region = self.region(group)
        if where.region is not None and region is not None and region != where.region:
            return False
        if where.account is None:
            return True
        if group.account is not None:
            return group.account == where.account
        if where.account in self.policy.accounts:
            return False  # listed under accounts: one of the others, not scaler's own
        if self._ask_own is not None and not self._own:
            self._own.append(self._ask_own())
        return not self._own or self._own[0] == where.account

    def key(self, group: GroupPolicy) -> str:
        """`account/region/ASG (group NAME)`: what tells one candidate from another."""
        account = self.account(group) or "(scaler's account)"
        region = self.region(group) or "(scaler's region)"
        return f"{account}/{region}/{group.asg_name} (group {group.name})"


def _choose(
    said: str,
    named: Sequence[tuple[GroupPolicy, Place]],
    wheres: Sequence[Place],
    places: _Places,
    *,
    how: str,
    lacking: str,
) -> GroupPolicy:
    """The one group named where the alarm fired; else an InputError saying what is missing.

    `named`: each group a name of the alarm's names, with where that name was said to be."""
    matched = _unique(g for g, where in named if places.holds(g, where))
    if len(matched) == 1:
        return matched[0]
    known = [w for w in wheres if w.account or w.region]
    at = f" in {'; '.join(map(str, dict.fromkeys(known)))}" if known else ""
    if matched:
        candidates = ", ".join(places.key(g) for g in matched)
        accounts = {places.account(g) for g in matched}
        regions = {places.region(g) for g in matched}
        missing = [
            part
            for part, differ, unsaid in (
                ("account", len(accounts) > 1, all(w.account is None for w in wheres)),
                ("region", len(regions) > 1, all(w.region is None for w in wheres)),
            )
            if differ and unsaid
        ]
        if missing:
            why = f"the alarm does not say its {' or '.join(missing)}: {lacking}"
        else:
            why = "they are in the same place: give each group its own ASG or queue"
        raise InputError(
            f"{said} matches {len(matched)} groups of the policy{at}, and scaler will not "
            f"guess which: {candidates}; {why}"
        )
    elsewhere = _unique(g for g, _ in named)
    if elsewhere:
        raise InputError(
            f"{said} fired{at or ' somewhere unknown'}, where the policy has no group of that "
            f"name; the groups of that name: {', '.join(places.key(g) for g in elsewhere)}"
        )
    raise InputError(
        f"{said} names no group of the policy{at}: {how}; groups: "
        + ", ".join(
            f"{g.name} (ASG {g.asg_name}, queue {g.queue_name})" for g in places.policy.groups
        )
    )


def child_metrics(alarm: Alarm, cloudwatch: CloudWatchClient) -> list[MetricRef]:
    """The metrics of a composite alarm's child alarms (one level: children's children unread)."""
    names = alarm.children[:_MAX_CHILDREN]
    try:
        found = call_aws(
            "cloudwatch:DescribeAlarms",
            alarm.name,
            cloudwatch.describe_alarms,
            AlarmNames=names,
            AlarmTypes=["MetricAlarm", "CompositeAlarm"],
        )
    except ScalerError as exc:
        raise type(exc)(
            f"composite alarm {alarm.name!r}: its child alarms ({', '.join(names)}) could not be "
            f"read, so its group is unknown: {exc}"
        ) from exc
    metrics: list[MetricRef] = []
    for child in found.get("MetricAlarms", []):
        metrics += _alarm_metrics(child)
    if not metrics:
        nested = [c.get("AlarmName", "?") for c in found.get("CompositeAlarms", [])]
        why = (
            f"they are composite alarms too ({', '.join(nested)}), read one level deep only"
            if nested
            else "none of them exists in this account and region"
        )
        raise InputError(
            f"composite alarm {alarm.name!r}: its child alarms ({', '.join(names)}) name no "
            f"metric: {why}"
        )
    return metrics


def _alarm_metrics(child: Mapping[str, Any]) -> list[MetricRef]:
    out = []
    if child.get("Dimensions"):
        out.append(MetricRef(dimensions=_pairs(child["Dimensions"])))
    for sub in child.get("Metrics", []):
        metric = sub.get("MetricStat", {}).get("Metric", {})
        if metric.get("Dimensions"):
            out.append(MetricRef(dimensions=_pairs(metric["Dimensions"])))
    return out


def _pairs(dims: Any) -> dict[str, str]:
    return {clean(d.get("Name"), 255): clean(d.get("Value"), 255) for d in dims}


def _names(metric: MetricRef, group: GroupPolicy) -> bool:
    asg = metric.dimensions.get("AutoScalingGroupName")
    queue = metric.dimensions.get("QueueName")
    return bool(
        (asg and asg == group.asg_name) or (queue and queue == queue_name_of(group.queue_name))
    )


def _unique(groups: Iterable[GroupPolicy]) -> list[GroupPolicy]:
    """Each group once, in the order met (names are unique in a policy; groups are unhashable)."""
    return list({g.name: g for g in groups}.values())


def _by_labels(
    alarm: Alarm, policy: Policy, labels: Mapping[str, str], places: _Places
) -> GroupPolicy:
    where = Place(
        account=_label_place(alarm, labels, "account", fields.account_id),
        region=_label_place(alarm, labels, "region", fields.region_code),
    )
    named: list[GroupPolicy] = []
    # The first label (in the policy's order) that names a group decides which it names.
    for label, field in labels.items():
        value = alarm.labels.get(label)
        if not value or field in ("account", "region"):
            continue
        named = [g for g in policy.groups if value == _label_field(g, field)]
        if named:
            break
    shown = ", ".join(f"{k}={v}" for k, v in list(alarm.labels.items())[:12]) or "no labels"
    mapping = ", ".join(f"{k} -> {v}" for k, v in labels.items())
    return _choose(
        f"Alertmanager alert {alarm.name!r} ({shown})",
        [(g, where) for g in named],
        [where],
        places,
        how=f"through the labels alerts.labels names ({mapping})",
        lacking="add the labels alerts.labels names for them (default `account`, `region`)",
    )


def _label_place(
    alarm: Alarm,
    labels: Mapping[str, str],
    field: str,
    read: Callable[[Any, str], str | None],
) -> str | None:
    for label, names in labels.items():
        value = alarm.labels.get(label)
        if names == field and value:
            try:
                return read(value, f"Alertmanager alert {alarm.name!r}: label {label}")
            except InputError as exc:
                raise InputError(
                    f"{exc}: alerts.labels reads it as the group's {field}; if it means "
                    "something else, set alerts.labels without it"
                ) from None
    return None


def _label_field(group: GroupPolicy, field: str) -> str:
    return {
        "name": group.name,
        "auto_scaling_group": group.asg_name,
        "queue": queue_name_of(group.queue_name),
    }[field]
