"""`scaler signals`: every signal with its unit and metric, after a policy's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler.cli import EXIT_BAD_INPUT, EXIT_OK, main
from scaler.signals import Signal
from scaler.vocabulary import SIGNAL_INFO

POLICY = """\
version: 1
groups:
  - name: etl
    auto_scaling_group: etl-asg
    queue: etl-jobs
    metrics:
      cpu_user: {namespace: Custom/Host, metric_name: cpu_user_pct}
      mem_used: {enabled: false}
      work_latency: {namespace: App, metric_name: JobSeconds, stat: p90}
"""


def test_every_signal_is_described() -> None:
    """A signal added to the vocabulary without a unit and meaning fails here."""
    assert [s.value for s in Signal if s.value not in SIGNAL_INFO] == []


def test_default_table_names_unit_and_metric(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a policy: the built-in table, placeholders unfilled."""
    assert main(["signals"]) == EXIT_OK
    out = capsys.readouterr().out
    rows: dict[str, str] = {}
    for line in out.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line)  # the table first, the meanings after
    assert "messages/min" in rows["queue_sent"] and "NumberOfMessagesSent" in rows["queue_sent"]
    assert "(Average, 5 min)" in rows["ebs_byte_balance"]
    assert "CWAgent cpu_usage_user [AutoScalingGroupName={asg}]" in rows["cpu_user"]
    assert all(s.value in rows for s in Signal)


@pytest.mark.parametrize(
    ("signal", "shown"),
    [
        ("cpu_user", "Custom/Host cpu_user_pct [AutoScalingGroupName=etl-asg] (Average, 1 min)"),
        ("work_latency", "App JobSeconds [AutoScalingGroupName=etl-asg] (p90, 1 min)"),
        ("mem_used", "not fetched"),
        ("queue_visible", "[QueueName=etl-jobs]"),
    ],
)
def test_policy_overrides_are_shown_per_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], signal: str, shown: str
) -> None:
    """With --policy: each group's metrics after its overrides, with its names filled in."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    assert main(["signals", "--policy", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("group etl (ASG etl-asg, queue etl-jobs):")
    row = next(line for line in out.splitlines() if line.split()[:1] == [signal])
    assert shown in row


def test_a_bad_policy_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An override of a signal that does not exist is named, with exit 2."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("cpu_user:", "cpu_usr:"))
    assert main(["signals", "--policy", str(path)]) == EXIT_BAD_INPUT
    assert "cpu_usr" in capsys.readouterr().err
