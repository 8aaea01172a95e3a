"""ebs_burst_exhaustion on synthetic windows: it warns ahead, and stays quiet below baseline."""

from __future__ import annotations

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
    assert finding.evidence["usage_mb_s"] == 325
    assert finding.evidence["baseline_mb_s"] == 143.75
    assert finding.evidence["max_mb_s"] == 593.75
    assert finding.evidence["sustained_after_mb_s"] == 143.75
    assert finding.evidence["balance_source"] == "estimated from a full bucket"
    assert "fresh" in str(finding.evidence["fresh_instances"])
    # the run ends once the fleet is held at its baseline (the rolling mean lags a little)
    assert finding.end is not None
    assert 74 <= (finding.end - START) / timedelta(minutes=1) <= 80


def test_summary_reads_like_an_engineer() -> None:
    """Mid-incident, the summary names the rate, the minutes left, and the rate after."""
    window = _window(np.full(40, 325.0))
    finding = EbsBurstExhaustion().evaluate(window, CONTEXT).findings[0]
    left = FULL_AT_325 - 40
    assert finding.end is None
    assert finding.summary.startswith(
        f"at 325 MB/s per instance this fleet's EBS burst runs out in about {round(left)} "
        "minutes; then each instance sustains 143.75 MB/s"
    )
    assert "new instance starts with a full EBS burst bucket" in finding.summary
    assert finding.severity is Severity.WARNING


def test_below_baseline_no_finding() -> None:
    """100 MB/s per instance never drains the bucket: nothing to warn about."""
    outcome = EbsBurstExhaustion().evaluate(_window(np.full(120, 100.0)), CONTEXT)
    assert outcome.findings == []
    assert not outcome.active.any()
    assert outcome.unevaluated is None


def test_a_type_without_burst_never_warns() -> None:
    """m5.4xlarge sustains 593.75 MB/s: there is no bucket to run out."""
    big = RuleContext(instance=bundled_catalog().require("m5.4xlarge"))
    assert EbsBurstExhaustion().evaluate(_window(np.full(120, 325.0)), big).findings == []


def test_without_the_instance_type_it_says_what_is_missing() -> None:
    """No InstanceFacts: a skipped outcome naming instance_type, not a silent pass."""
    outcome = EbsBurstExhaustion().evaluate(_window(np.full(10, 325.0)), RuleContext())
    assert outcome.unevaluated is not None
    assert outcome.unevaluated.missing == ["instance_type"]
    assert "instance_type" in outcome.unevaluated.reason


def test_without_ebs_signals_it_says_which() -> None:
    """A host-metrics source without ebs_* signals is unevaluated, naming them."""
    window = Window(group="g", start=START, length=5, series={"cpu_user": np.full(5, 50.0)})
    outcome = EbsBurstExhaustion().evaluate(window, CONTEXT)
    assert outcome.unevaluated is not None
    assert "ebs_read_bytes" in outcome.unevaluated.missing


def test_measured_balance_wins_over_the_estimate() -> None:
    """EBSByteBalance% at 20% means about 15 minutes left at 325 MB/s: critical."""
    balance = np.full(10, np.nan)
    balance[4] = 20.0
    window = _window(np.full(10, 325.0), ebs_byte_balance=balance)
    finding = EbsBurstExhaustion().evaluate(window, CONTEXT).findings[0]
    assert (
        finding.evidence["balance_source"]
        == "measured at 2026-03-02T08:04:00Z, then estimated from usage"
    )
    step = 60 * 181.25 / 810_000
    expected = (0.20 - 5 * step) * FULL_AT_325 / 1.0
    assert finding.evidence["minutes_to_exhaustion"] == pytest.approx(expected, abs=0.05)
    assert finding.severity is Severity.CRITICAL


def test_shorter_horizon_warns_later() -> None:
    """With a 30-minute horizon the warning starts once 30 minutes or fewer are left."""
    rule = EbsBurstExhaustion(EbsBurstSettings(warn_minutes_ahead=30, min_minutes=1))
    finding = rule.evaluate(_window(_incident()), CONTEXT).findings[0]
    first = (finding.start - START) / timedelta(minutes=1)
    assert FULL_AT_325 - (first + 1) <= 30 < FULL_AT_325 - first


def test_iops_bucket_can_be_the_one_that_runs_out() -> None:
    """12,000 IOPS at modest MB/s: the IOPS bucket empties first and the finding says so."""
    n = 20
    window = Window(
        group="g",
        start=START,
        length=n,
        series={
            "ebs_read_bytes": np.full(n, 50e6 * 60),
            "ebs_read_ops": np.full(n, 12_000 * 60.0),
            "ebs_write_ops": np.zeros(n),
        },
    )
    finding = EbsBurstExhaustion().evaluate(window, CONTEXT).findings[0]
    assert finding.evidence["limit"] == "iops"
    assert finding.evidence["sustained_after"] == 6000
    assert "IOPS per instance" in finding.summary


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
