"""The instance catalog: DescribeInstanceTypes from the moto server, snapshots, prices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.stub import Stubber

from scaler.aws import Clients
from scaler.cli import catalog_cmd as _catalog_cmd  # noqa: F401  (registers `catalog`)
from scaler.cli import main
from scaler.demo.embedded import LocalAws
from scaler.errors import AwsCallError, InputError, PolicyError, RetryableAwsError
from scaler.instances.catalog import Catalog, InstanceFacts, bundled_catalog, load_snapshot
from scaler.instances.refresh import facts_from_api, fetch_catalog, write_snapshot
from scaler.policy import parse_policy

TAKEN = "2026-11-23"


def test_moto_describe_instance_types_carries_ebs_info(clients: Clients) -> None:
    """The moto server answers DescribeInstanceTypes with EbsOptimizedInfo and storage info."""
    answer = clients.ec2.describe_instance_types(InstanceTypes=["m5d.xlarge"])
    item = answer["InstanceTypes"][0]
    ebs = item["EbsInfo"]["EbsOptimizedInfo"]
    assert ebs["BaselineThroughputInMBps"] == 143.75
    assert ebs["MaximumThroughputInMBps"] == 593.75
    assert item["InstanceStorageInfo"]["TotalSizeInGB"] == 150


def test_fetch_catalog_from_moto_matches_the_user_guide(clients: Clients) -> None:
    """m5.xlarge, m5d.xlarge and m5.4xlarge come back with the EBS figures SIGNALS.md quotes."""
    catalog = fetch_catalog(
        clients.ec2, taken=TAKEN, instance_types=["m5.xlarge", "m5d.xlarge", "m5.4xlarge"]
    )
    m5 = catalog.require("m5.xlarge")
    assert (m5.ebs_baseline_mb_s, m5.ebs_max_mb_s) == (143.75, 593.75)
    assert (m5.ebs_baseline_iops, m5.ebs_max_iops) == (6000, 18750)
    assert (m5.ebs_baseline_mbps, m5.ebs_max_mbps) == (1150, 4750)
    assert m5.ebs_bursts
    assert (m5.vcpus, m5.memory_gib, m5.local_storage_gb) == (4, 16, 0)
    m5d = catalog.require("m5d.xlarge")
    assert (m5d.local_storage_gb, m5d.local_disks, m5d.local_nvme) == (150, 1, True)
    assert m5d.ebs_baseline_mb_s == m5.ebs_baseline_mb_s
    big = catalog.require("m5.4xlarge")
    assert big.ebs_baseline_mb_s == big.ebs_max_mb_s == 593.75
    assert not big.ebs_bursts
    assert catalog.taken == TAKEN


def test_fetch_all_types_skips_those_without_ebs_limits(clients: Clients) -> None:
    """Every type pages through; types without EbsOptimizedInfo are left out, not zeroed."""
    catalog = fetch_catalog(clients.ec2, taken=TAKEN)
    names = {f.instance_type for f in catalog.all()}
    assert {"m5.xlarge", "m7g.xlarge", "i4i.xlarge"} <= names
    assert "m1.small" not in names  # no EbsOptimizedInfo in DescribeInstanceTypes
    assert catalog.require("m7g.xlarge").architecture == "arm64"
    assert all(f.ebs_max_mb_s >= f.ebs_baseline_mb_s > 0 for f in catalog.all())


def _api_item(name: str, baseline: float) -> dict[str, object]:
    return {
        "InstanceType": name,
        "VCpuInfo": {"DefaultVCpus": 2},
        "MemoryInfo": {"SizeInMiB": 8192},
        "ProcessorInfo": {"SupportedArchitectures": ["i386", "x86_64"]},
        "EbsInfo": {
            "EbsOptimizedInfo": {
                "BaselineBandwidthInMbps": int(baseline * 8),
                "BaselineThroughputInMBps": baseline,
                "BaselineIops": 3600,
                "MaximumBandwidthInMbps": 4750,
                "MaximumThroughputInMBps": 593.75,
                "MaximumIops": 18750,
            }
        },
    }


def test_fetch_catalog_follows_next_token(clients: Clients) -> None:
    """Both pages are read (Stubber: the moto server returns one page, so it cannot show paging)."""
    with Stubber(clients.ec2) as stub:
        stub.add_response(
            "describe_instance_types",
            {"InstanceTypes": [_api_item("x1.large", 81.25)], "NextToken": "page-2"},
            {"MaxResults": 100},
        )
        stub.add_response(
            "describe_instance_types",
            {"InstanceTypes": [_api_item("x2.large", 100.0)]},
            {"MaxResults": 100, "NextToken": "page-2"},
        )
        catalog = fetch_catalog(clients.ec2, taken=TAKEN)
        stub.assert_no_pending_responses()
    assert [f.instance_type for f in catalog.all()] == ["x1.large", "x2.large"]
    assert catalog.require("x1.large").architecture == "x86_64"


@pytest.mark.parametrize(
    ("code", "error"),
    [("RequestLimitExceeded", RetryableAwsError), ("UnauthorizedOperation", AwsCallError)],
)
def test_fetch_catalog_errors_say_whether_to_retry(
    clients: Clients, code: str, error: type[Exception]
) -> None:
    """Throttling is retryable; a permission error is permanent (Stubber: moto never throttles)."""
    with Stubber(clients.ec2) as stub:
        stub.add_client_error("describe_instance_types", service_error_code=code)
        with pytest.raises(error, match=code):
            fetch_catalog(clients.ec2, taken=TAKEN)
    if error is AwsCallError:
        assert not issubclass(error, RetryableAwsError)


def test_facts_from_api_without_storage_or_ebs() -> None:
    """A type with no EBS limits gives None; a type with no instance store has 0 GB, no NVMe."""
    assert facts_from_api({"InstanceType": "m1.small", "EbsInfo": {}}) is None
    facts = facts_from_api(_api_item("x1.large", 81.25))
    assert facts is not None
    assert (facts.local_storage_gb, facts.local_nvme, facts.local_disks) == (0, False, 0)
    assert facts.memory_gib == 8


def test_snapshot_round_trip_is_atomic(clients: Clients, tmp_path: Path) -> None:
    """A written snapshot reads back equal, replaces the old file, and leaves no temp file."""
    catalog = fetch_catalog(clients.ec2, taken=TAKEN, instance_types=["m5.xlarge", "m5d.large"])
    path = tmp_path / "snap" / "instances.json"
    path.parent.mkdir()
    path.write_text("old contents")
    write_snapshot(catalog, path)
    again = load_snapshot(path)
    assert again.all() == catalog.all()
    assert again.taken == TAKEN
    assert [p.name for p in path.parent.iterdir()] == ["instances.json"]


def test_load_snapshot_rejects_a_bad_file(tmp_path: Path) -> None:
    """A file that is not a snapshot is an InputError naming the file."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"types": [{"instance_type": "x"}]}))
    with pytest.raises(InputError, match=r"bad\.json"):
        load_snapshot(path)


def test_bundled_snapshot_is_consistent() -> None:
    """Every bundled type has max >= baseline, NVMe with storage, and the families ranked."""
    catalog = bundled_catalog()
    facts = catalog.all()
    assert len(facts) >= 90
    for f in facts:
        assert f.ebs_max_mb_s >= f.ebs_baseline_mb_s > 0
        assert f.ebs_max_iops >= f.ebs_baseline_iops > 0
        assert f.local_nvme == (f.local_storage_gb > 0)
    families = {f.family for f in facts}
    assert {"m5", "m5d", "m6i", "m6id", "c5", "c6id", "r5d", "m7g", "i3", "i4i"} <= families
    assert catalog.taken != "unknown"
    assert catalog.prices_taken != "unknown"


def test_missing_price_is_said_not_invented() -> None:
    """A type without a bundled price has None, and the note says how to supply one."""
    catalog = bundled_catalog()
    assert catalog.price("m6i.xlarge") is None
    assert "no price known" in catalog.price_note("m6i.xlarge")
    assert "prices:" in catalog.price_note("m6i.xlarge")
    assert catalog.price("m5.xlarge") == 0.192
    assert "on-demand" in catalog.price_note("m5.xlarge")


def test_policy_prices_override_the_bundled_table() -> None:
    """`prices:` in a policy replaces a bundled price and fills a missing one."""
    policy = parse_policy(
        "groups: [{name: a}]\nprices: {m5.xlarge: 0.15, m6i.xlarge: 0.17}\n", "p.yaml"
    )
    catalog = policy.catalog()
    assert catalog.price("m5.xlarge") == 0.15
    assert catalog.price("m6i.xlarge") == 0.17
    assert "policy" in catalog.price_note("m6i.xlarge")
    assert bundled_catalog().price("m5.xlarge") == 0.192  # the bundled catalog is untouched


def test_policy_rejects_a_non_positive_price() -> None:
    """A zero price is a PolicyError naming the field."""
    with pytest.raises(PolicyError, match=r"prices\.m5\.xlarge"):
        parse_policy("groups: [{name: a}]\nprices: {m5.xlarge: 0}\n", "p.yaml")


def test_require_names_the_unknown_type() -> None:
    """An unknown type is an InputError that names it and the catalog's date."""
    catalog = Catalog([], taken="2026-01-01")
    with pytest.raises(InputError, match=r"'m9\.huge'.*2026-01-01"):
        catalog.require("m9.huge")


def test_cli_show_prints_limits_and_missing_price(capsys: pytest.CaptureFixture[str]) -> None:
    """`scaler catalog show` prints MB/s, Mbps, IOPS, burst, local storage, and a missing price."""
    assert main(["catalog", "show", "m5d.xlarge", "m6i.xlarge"]) == 0
    out = capsys.readouterr().out
    assert "143.75 MB/s" in out
    assert "1150 Mbps" in out
    assert "18750 IOPS" in out
    assert "150 GB NVMe" in out
    assert "EBS burst     yes" in out
    assert "no price known" in out


def test_cli_show_unknown_type_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown type is bad input: exit 2 and a message naming it."""
    assert main(["catalog", "show", "m5.huge"]) == 2
    assert "m5.huge" in capsys.readouterr().err


def test_cli_refresh_then_show(
    aws: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`catalog refresh` against the moto server writes a snapshot that `show --catalog` reads."""
    out_path = tmp_path / "instances.json"
    code = main(
        [
            "catalog",
            "refresh",
            "--endpoint-url",
            aws.endpoint_url,
            "--region",
            "us-east-1",
            "--output",
            str(out_path),
            "--types",
            "m5.4xlarge",
            "i4i.xlarge",
        ]
    )
    assert code == 0
    doc = json.loads(out_path.read_text())
    assert sorted(t["instance_type"] for t in doc["types"]) == ["i4i.xlarge", "m5.4xlarge"]
    assert (
        main(["catalog", "show", "--catalog", str(out_path), "--format", "json", "i4i.xlarge"]) == 0
    )
    shown = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert shown["types"][0]["local_storage_gb"] == 937
    assert InstanceFacts.model_validate(shown["types"][0]).local_nvme
