"""ebs_burst_exhaustion on synthetic windows: it warns ahead, and stays quiet below baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from scaler.instances.catalog import bundled_catalog
from scaler.models import Severity
from scaler.policy import parse_policy
from scaler.rules import RuleContext, rules
from scaler.rules.burst import EbsBurstExhaustion, EbsBurstSettings
from scaler.signals import Window

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
M5_XLARGE = bundled_catalog().require("m5.xlarge")
CONTEXT = RuleContext(instance=M5_XLARGE)
FULL_AT_325 = 810_000 / (325 - 143.75) / 60  # 74.48 minutes from a full bucket


def _window(mb_s: np.ndarray, **extra: np.ndarray) -> Window:
    """Per-instance EBS usage in MB/s, split 60/40 into read and write bytes per minute."""
    per_min = mb_s * 1e6 * 60
    return Window(
        group="workers",
        start=START,
        length=len(mb_s),
        series={"ebs_read_bytes": 0.6 * per_min, "ebs_write_bytes": 0.4 * per_min, **extra},
    )


def _incident() -> np.ndarray:
    """325 MB/s until the bucket runs out (minute 74), then throttled at the 143.75 baseline."""
    return np.concatenate([np.full(75, 325.0), np.full(45, 143.75)])


def test_registered_and_configurable_from_a_policy() -> None:
    """The rule is in the registry, and a policy may set its horizon."""
    assert rules.get("ebs_burst_exhaustion") is EbsBurstExhaustion
    policy = parse_policy(
        "groups: [{name: a, rules: {ebs_burst_exhaustion: {warn_minutes_ahead: 45}}}]"
    )
    settings = policy.groups[0].rules.ebs_burst_exhaustion
    assert isinstance(settings, EbsBurstSettings)
    assert settings.warn_minutes_ahead == 45


def test_325_mb_s_from_a_full_bucket_warns_about_75_minutes_ahead() -> None:
    """The warning starts within minutes, predicting exhaustion ~74.5 min after the start."""
    outcome = EbsBurstExhaustion().evaluate(_window(_incident()), CONTEXT)
    assert len(outcome.findings) == 1
    finding = outcome.findings[0]
    lead = (finding.start - START) / timedelta(minutes=1)
    assert lead <= 5
    warned = finding.evidence["first_warned_minutes_ahead"]
    assert isinstance(warned, float)
    assert warned == pytest.approx(FULL_AT_325 - lead - 1, abs=0.05)
    assert warned > 65
    exhausted = datetime.fromisoformat(str(finding.evidence["exhaustion_at"]))
    assert abs((exhausted - START) / timedelta(minutes=1) - FULL_AT_325) <= 1
    expected = {
        "usage_mb_s": 325,
        "baseline_mb_s": 143.75,
        "max_mb_s": 593.75,
        "sustained_after_mb_s": 143.75,
        "balance_source": "estimated from a full bucket",
    }
    assert {name: finding.evidence[name] for name in expected} == expected
    assert "fresh" in str(finding.evidence["fresh_instances"])
    # the run ends once the fleet is held at its baseline (the rolling mean lags a little)
    assert finding.end is not None
    assert 74 <= (finding.end - START) / timedelta(minutes=1) <= 80


def _iops_window(n: int = 20) -> Window:
    """12,000 IOPS per instance at a modest 50 MB/s."""
    return Window(
        group="g",
        start=START,
        length=n,
        series={
            "ebs_read_bytes": np.full(n, 50e6 * 60),
            "ebs_read_ops": np.full(n, 12_000 * 60.0),
            "ebs_write_ops": np.zeros(n),
        },
    )


def _balance_at_20_percent(n: int = 10) -> np.ndarray:
    """EBSByteBalance% of 20 read once, at minute 4."""
    balance = np.full(n, np.nan)
    balance[4] = 20.0
    return balance


# 20% of the bucket, less five minutes at 325 MB/s, at 325 MB/s: about 15 minutes left.
_STEP = 60 * 181.25 / 810_000
_LEFT_FROM_20_PERCENT = (0.20 - 5 * _STEP) * FULL_AT_325 / 1.0


@dataclass(frozen=True)
class Warns:
    """One row: a window on m5.xlarge, and the one finding it must give."""

    rule: str
    window: Window
    evidence: dict[str, object] = field(default_factory=dict)
    severity: Severity | None = None  # checked when given
    ongoing: bool | None = None  # checked when given: the finding has no end yet
    summary_start: str = ""
    summary: tuple[str, ...] = ()  # phrases the summary must contain


WARNS = [
    Warns("mid-incident, the summary names the rate, the minutes left, and the rate after",
          _window(np.full(40, 325.0)),
          severity=Severity.WARNING, ongoing=True,
          summary_start=(
              f"at 325 MB/s per instance this fleet's EBS burst runs out in about "
              f"{round(FULL_AT_325 - 40)} minutes; then each instance sustains 143.75 MB/s"
          ),
          summary=("new instance starts with a full EBS burst bucket",)),
    Warns("a warning that has ended speaks in the past tense, dated: its forecast is not now",
          _window(np.concatenate((np.full(40, 325.0), np.full(30, 50.0)))),
          ongoing=False,
          summary=("EBS burst was, at 08:", "UTC, forecast to run out in about",)),
    Warns("EBSByteBalance% at 20% means about 15 minutes left at 325 MB/s: critical",
          _window(np.full(10, 325.0), ebs_byte_balance=_balance_at_20_percent()),
          evidence={
              "balance_source": "measured at 2026-03-02T08:04:00Z, then estimated from usage",
              "minutes_to_exhaustion": pytest.approx(_LEFT_FROM_20_PERCENT, abs=0.05),
          },
          severity=Severity.CRITICAL),
    Warns("12,000 IOPS at modest MB/s: the IOPS bucket empties first and the finding says so",
          _iops_window(),
          evidence={"limit": "iops", "sustained_after": 6000},
          summary=("IOPS per instance",)),
]  # fmt: skip


@pytest.mark.parametrize("case", WARNS, ids=[c.rule for c in WARNS])
def test_warns(case: Warns) -> None:
    """Each row: exactly the evidence, severity and summary a user reads."""
    finding = EbsBurstExhaustion().evaluate(case.window, CONTEXT).findings[0]
    assert {name: finding.evidence.get(name) for name in case.evidence} == case.evidence
    if case.severity is not None:
        assert finding.severity is case.severity
    if case.ongoing is not None:
        assert (finding.end is None) is case.ongoing
    assert finding.summary.startswith(case.summary_start), finding.summary
    assert [phrase for phrase in case.summary if phrase not in finding.summary] == []


_EBS_SIGNALS = ["ebs_read_bytes", "ebs_write_bytes", "ebs_read_ops", "ebs_write_ops"]


@pytest.mark.parametrize(
    ("window", "context", "missing"),
    [
        pytest.param(
            _window(np.full(10, 325.0)),
            RuleContext(),
            ["instance_type"],
            id="without InstanceFacts: a skipped outcome naming instance_type, not a silent pass",
        ),
        pytest.param(
            Window(group="g", start=START, length=5, series={"cpu_user": np.full(5, 50.0)}),
            CONTEXT,
            _EBS_SIGNALS,
            id="a host-metrics source without ebs_* signals is unevaluated, naming them",
        ),
    ],
)
def test_says_what_is_missing(window: Window, context: RuleContext, missing: list[str]) -> None:
    """Each row: the rule cannot judge, and the outcome names what it lacks."""
    outcome = EbsBurstExhaustion().evaluate(window, context)
    assert outcome.findings == []
    assert outcome.unevaluated is not None
    assert outcome.unevaluated.missing == missing
    assert [name for name in missing if name not in outcome.unevaluated.reason] == []


@pytest.mark.parametrize(
    ("usage", "instance_type"),
    [
        pytest.param(100.0, "m5.xlarge", id="100 MB/s per instance never drains the bucket"),
        pytest.param(325.0, "m5.4xlarge", id="m5.4xlarge sustains 593.75 MB/s: no bucket"),
    ],
)
def test_quiet(usage: float, instance_type: str) -> None:
    """Each row: nothing to warn about, and the rule did judge (not unevaluated)."""
    context = RuleContext(instance=bundled_catalog().require(instance_type))
    outcome = EbsBurstExhaustion().evaluate(_window(np.full(120, usage)), context)
    assert outcome.findings == []
    assert not outcome.active.any()
    assert outcome.unevaluated is None


def test_shorter_horizon_warns_later() -> None:
    """With a 30-minute horizon the warning starts once 30 minutes or fewer are left."""
    rule = EbsBurstExhaustion(EbsBurstSettings(warn_minutes_ahead=30, min_minutes=1))
    finding = rule.evaluate(_window(_incident()), CONTEXT).findings[0]
    first = (finding.start - START) / timedelta(minutes=1)
    assert FULL_AT_325 - (first + 1) <= 30 < FULL_AT_325 - first


def test_causal_a_prefix_judges_the_same() -> None:
    """Minute t depends only on minutes <= t: a shorter window gives the same mask."""
    full = EbsBurstExhaustion().evaluate(_window(_incident()), CONTEXT).active
    part = EbsBurstExhaustion().evaluate(_window(_incident()[:50]), CONTEXT).active
    assert (full[:50] == part).all()


def test_recommend_names_a_size_that_sustains_the_usage() -> None:
    """At 325 MB/s the smallest m5 that sustains it is m5.4xlarge; local NVMe is mentioned."""
    rule = EbsBurstExhaustion()
    finding = rule.evaluate(_window(np.full(30, 325.0)), CONTEXT).findings[0]
    opinion = rule.recommend(finding, CONTEXT)
    assert opinion is not None
    assert opinion.instance_type == "m5.4xlarge"
    assert "m5d" in opinion.reason
    assert rule.recommend(finding, RuleContext()) is None


def _balance_every_5(values: np.ndarray) -> np.ndarray:
    """EBSByteBalance% as CloudWatch reports it: one datapoint every 5 minutes."""
    out = np.full(len(values), np.nan)
    out[::5] = values[::5]
    return out


@pytest.mark.parametrize(
    ("usage", "balance", "findings", "why"),
    [
        (
            np.full(180, 146.0),
            _balance_every_5(np.zeros(180)),
            0,
            "80 minutes into a throttle, usage at the baseline, balance 0: the future has come",
        ),
        (
            np.concatenate([np.full(75, 325.0), np.full(120, 146.0)]),
            None,
            1,
            "one warning before the bucket runs out, none after while throttled",
        ),
        (
            np.concatenate([np.full(75, 325.0), np.full(60, 146.0), np.full(40, 325.0)]),
            None,
            1,
            "throttled, then bursting again on an empty bucket: not re-raised",
        ),
    ],
)
def test_a_warning_is_not_raised_again_once_its_future_has_come(
    usage: np.ndarray, balance: np.ndarray | None, findings: int, why: str
) -> None:
    """ebs_burst_exhaustion does not flap: a spent bucket is reported once, with its start."""
    extra = {} if balance is None else {"ebs_byte_balance": balance}
    outcome = EbsBurstExhaustion().evaluate(_window(usage, **extra), CONTEXT)
    assert len(outcome.findings) == findings, why
    assert all(f.end is not None for f in outcome.findings), why
