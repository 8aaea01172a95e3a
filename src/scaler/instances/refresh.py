"""Refresh the instance catalog from EC2 DescribeInstanceTypes and write it as a snapshot."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaler.aws import AWS_CALL_ERRORS, classify_aws_error
from scaler.instances.catalog import Catalog, InstanceFacts, bundled_catalog
from scaler.logs import get_logger

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

__all__ = ["SOURCE", "facts_from_api", "fetch_catalog", "write_snapshot"]

log = get_logger(__name__)

SOURCE = "EC2 DescribeInstanceTypes (EbsInfo.EbsOptimizedInfo, InstanceStorageInfo)"
_MIB_PER_GIB = 1024


def facts_from_api(item: Mapping[str, Any]) -> InstanceFacts | None:
    """One DescribeInstanceTypes entry as InstanceFacts; None for types without EBS limits."""
    ebs = item.get("EbsInfo", {}).get("EbsOptimizedInfo")
    if not ebs:
        return None  # not EBS-optimized (or no published limits): nothing to size on
    storage = item.get("InstanceStorageInfo") or {}
    architectures = item.get("ProcessorInfo", {}).get("SupportedArchitectures") or ["x86_64"]
    return InstanceFacts(
        instance_type=item["InstanceType"],
        vcpus=int(item["VCpuInfo"]["DefaultVCpus"]),
        memory_gib=item["MemoryInfo"]["SizeInMiB"] / _MIB_PER_GIB,
        ebs_baseline_mb_s=float(ebs["BaselineThroughputInMBps"]),
        ebs_max_mb_s=float(ebs["MaximumThroughputInMBps"]),
        ebs_baseline_iops=int(ebs["BaselineIops"]),
        ebs_max_iops=int(ebs["MaximumIops"]),
        local_storage_gb=int(storage.get("TotalSizeInGB", 0)),
        local_disks=sum(int(d.get("Count", 0)) for d in storage.get("Disks", [])),
        local_nvme=storage.get("NvmeSupport") in ("required", "supported"),
        # x86_64 wins for types that also list i386: that is the one a fleet runs
        architecture="x86_64" if "x86_64" in architectures else str(architectures[0]),
        current_generation=bool(item.get("CurrentGeneration", True)),
    )


def fetch_catalog(
    ec2: EC2Client, *, taken: str, instance_types: Sequence[str] = (), page_size: int = 100
) -> Catalog:
    """Every instance type (or the named ones) from DescribeInstanceTypes, page by page.

    Prices are not in this API; the result carries the bundled price table.
    """
    paginator = ec2.get_paginator("describe_instance_types")
    kwargs: dict[str, Any] = {"PaginationConfig": {"PageSize": page_size}}
    if instance_types:
        # AWS rejects PageSize together with an explicit list of types
        kwargs = {"InstanceTypes": list(instance_types)}
    items: list[Mapping[str, Any]] = []
    try:
        for page in paginator.paginate(**kwargs):
            items.extend(page.get("InstanceTypes", []))
    except AWS_CALL_ERRORS as exc:
        raise classify_aws_error(exc, operation="EC2 DescribeInstanceTypes") from exc
    facts = _usable(items)
    log.info("catalog.fetched", types=len(facts), skipped=len(items) - len(facts))
    prices = bundled_catalog()
    return Catalog(
        facts,
        prices.prices,
        taken=taken,
        source=SOURCE,
        prices_taken=prices.prices_taken,
        prices_source=prices.prices_source,
    )


def _usable(items: Iterable[Mapping[str, Any]]) -> list[InstanceFacts]:
    facts = [facts_from_api(item) for item in items]
    return [f for f in facts if f is not None]


def write_snapshot(catalog: Catalog, path: str | Path) -> Path:
    """Write the catalog's instances.json atomically (temp file in the same folder, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(catalog.snapshot(), indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
