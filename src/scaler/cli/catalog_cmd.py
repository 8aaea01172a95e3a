"""`scaler catalog show TYPE...` and `scaler catalog refresh [--output PATH]`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime

from scaler.cli import EXIT_OK, commands
from scaler.instances.burst import Bucket
from scaler.instances.catalog import Catalog, InstanceFacts, bundled_catalog, load_snapshot
from scaler.policy import load_policy

__all__ = ["describe_type"]

DEFAULT_OUTPUT = "instances.json"


def _add(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    sub = parser.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print instance types' EBS limits, storage and price")
    show.add_argument("types", nargs="+", metavar="TYPE")
    show.add_argument("--catalog", help="a snapshot from `catalog refresh` (default: bundled)")
    show.add_argument("--policy", help="a policy whose prices override the bundled ones")
    show.add_argument("--format", choices=["text", "json"], default="text")
    refresh = sub.add_parser("refresh", help="fetch every instance type from EC2 into a snapshot")
    refresh.add_argument(
        "--output", default=DEFAULT_OUTPUT, help=f"snapshot file (default: {DEFAULT_OUTPUT})"
    )
    refresh.add_argument("--types", nargs="+", metavar="TYPE", help="only these types")
    refresh.add_argument("--endpoint-url", help="AWS endpoint (e.g. a local moto server)")
    refresh.add_argument("--region", help="AWS region (default: the boto3 chain's)")
    return _run


def _run(args: argparse.Namespace) -> int:
    if args.catalog_command == "refresh":
        return _refresh(args)
    catalog = load_snapshot(args.catalog) if args.catalog else bundled_catalog()
    if args.policy:
        catalog = load_policy(args.policy).catalog(catalog)
    facts = [catalog.require(name) for name in args.types]
    if args.format == "json":
        doc = {
            "taken": catalog.taken,
            "source": catalog.source,
            "types": [_as_json(f, catalog) for f in facts],
        }
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    print(f"instance catalog taken {catalog.taken}: {catalog.source}")
    for f in facts:
        print("\n".join(describe_type(f, catalog)))
    return EXIT_OK


def _refresh(args: argparse.Namespace) -> int:
    # entry-point layer: the one place here that makes clients and reads the clock
    import boto3

    from scaler.aws import make_clients
    from scaler.instances.refresh import fetch_catalog, write_snapshot

    clients = make_clients(boto3.Session(), endpoint_url=args.endpoint_url, region_name=args.region)
    taken = datetime.now(UTC).date().isoformat()
    catalog = fetch_catalog(clients.ec2, taken=taken, instance_types=args.types or ())
    path = write_snapshot(catalog, args.output)
    print(
        f"{path}: {len(catalog.all())} instance types, taken {taken}; "
        f"use it with `scaler catalog show --catalog {path}`"
    )
    return EXIT_OK


def describe_type(facts: InstanceFacts, catalog: Catalog) -> list[str]:
    """Lines a person reads about one type: EBS baseline and maximum, burst, storage, price."""
    f = facts
    lines = [
        f"{f.instance_type}: {f.vcpus} vCPUs, {f.memory_gib:g} GiB, {f.architecture}, "
        f"{'current' if f.current_generation else 'previous'} generation",
        f"  EBS baseline  {f.ebs_baseline_mb_s:>8g} MB/s  {f.ebs_baseline_mbps:>6g} Mbps  "
        f"{f.ebs_baseline_iops:>6} IOPS",
        f"  EBS maximum   {f.ebs_max_mb_s:>8g} MB/s  {f.ebs_max_mbps:>6g} Mbps  "
        f"{f.ebs_max_iops:>6} IOPS",
    ]
    if f.ebs_bursts:
        bucket = Bucket.throughput(f)
        lines.append(
            f"  EBS burst     yes: 'up to' the maximum for {bucket.burst_minutes:g} minutes from "
            f"a full bucket ({bucket.capacity / 1000:,.0f} GB above baseline), then the baseline"
        )
    else:
        lines.append("  EBS burst     no: the baseline is sustained")
    storage = (
        f"{f.local_storage_gb} GB {'NVMe' if f.local_nvme else 'instance store'} "
        f"({f.local_disks} disk{'s' if f.local_disks != 1 else ''})"
        if f.local_storage_gb
        else "none (EBS only)"
    )
    lines.append(f"  local storage {storage}")
    price = catalog.price(f.instance_type)
    lines.append(
        f"  price         ${price:g}/hour, {catalog.price_note(f.instance_type).split(': ', 1)[1]}"
        if price is not None
        else f"  price         {catalog.price_note(f.instance_type).split(': ', 1)[1]}"
    )
    return lines


def _as_json(facts: InstanceFacts, catalog: Catalog) -> dict[str, object]:
    return {
        **facts.model_dump(),
        "ebs_baseline_mbps": facts.ebs_baseline_mbps,
        "ebs_max_mbps": facts.ebs_max_mbps,
        "ebs_bursts": facts.ebs_bursts,
        "price_per_hour": catalog.price(facts.instance_type),
        "price_note": catalog.price_note(facts.instance_type),
    }


commands.register("catalog")(("show instance types' facts or refresh them from EC2", _add))
