"""Ranking instance types for an I/O-, CPU- or memory-bound fleet, under policy constraints."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.instances.alternatives import Demand, InstanceConstraints
from scaler.instances.catalog import bundled_catalog
from scaler.instances.ranking import GP3_USD_PER_MIB_S_MONTH, rank_alternatives
from scaler.instances.table import render_alternatives
from scaler.models import Advice, Alternative, Recommendation, Strategy

CATALOG = bundled_catalog()
M5_XLARGE = CATALOG.require("m5.xlarge")
UTILIZATION = 0.9
INCIDENT_TIME = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)

# The incident: 10 m5.xlarge each serving 130 msg/min at 325 MB/s while the burst lasted.
INCIDENT = Demand.measured(
    M5_XLARGE,
    arrivals_per_min=1300,
    msgs_per_min=130,
    ebs_mb_s=325,
    ebs_iops=2000,
    cpu_pct=16.6,
    mem_used_pct=40,
)


def _by_type(alternatives: list[Alternative]) -> dict[str, Alternative]:
    return {a.instance_type: a for a in alternatives}


def test_demand_from_measurements() -> None:
    """325 MB/s at 130 msg/min is 150 MB a message; 16.6% of 4 vCPUs is 0.306 s a message."""
    assert INCIDENT.mb_per_message == pytest.approx(150.0)
    assert INCIDENT.cpu_seconds_per_message == pytest.approx(0.166 * 4 * 60 / 130)
    assert INCIDENT.ebs_mb_s == pytest.approx(325.0)


def test_incident_ranks_local_nvme_and_a_larger_ebs_size() -> None:
    """m5d.xlarge (local NVMe) and m5.4xlarge (EBS covers 325 MB/s) are ranked, with costs."""
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG, limit=None)
    by_type = _by_type(ranked)
    local = by_type["m5d.xlarge"]
    assert local.strategy is Strategy.LOCAL_NVME
    # the instance store is assumed to sustain the 130 msg/min measured while bursting
    assert local.instances_needed == math.ceil(1300 / (UTILIZATION * 130))
    assert local.fleet_cost_per_hour == pytest.approx(local.instances_needed * 0.226)
    assert "instance store" in local.change
    assert "formatted" in local.change
    assert "same as m5.xlarge" in local.change
    assert any("fio" in a for a in local.assumptions)

    big = by_type["m5.4xlarge"]
    assert big.strategy is Strategy.SUSTAINED_EBS
    assert big.sustained_mb_s >= 325
    per_instance = UTILIZATION * 593.75 * 60 / 150
    assert big.instances_needed == math.ceil(1300 / per_instance)
    assert big.limit == "ebs_throughput"
    assert big.fleet_cost_per_hour == pytest.approx(big.instances_needed * 0.768)
    assert big.cost_per_1000_messages == pytest.approx(
        big.instances_needed * 0.768 / (1300 * 60 / 1000), rel=1e-4
    )

    same = by_type["m5.xlarge"]
    assert same.strategy is Strategy.SAME_TYPE
    assert same.instances_needed == math.ceil(1300 / (UTILIZATION * 143.75 * 60 / 150))
    # moving the hot I/O to the instance store beats buying more EBS bandwidth
    assert ranked.index(local) < ranked.index(big)
    assert ranked.index(local) < ranked.index(same)


def test_default_top_five_holds_nvme_and_keeps_the_reference_row() -> None:
    """The default list is short, led by local NVMe, and always shows more-of-the-same."""
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG)
    assert ranked[0].instance_type == "m5d.xlarge"
    assert len(ranked) <= 6
    assert any(a.strategy is Strategy.SAME_TYPE for a in ranked)
    families = [a.instance_type.split(".")[0] for a in ranked if a.strategy is Strategy.SAME_TYPE]
    assert families == ["m5"]


def test_priced_alternatives_come_cheapest_first() -> None:
    """Priced options are sorted by cost per 1,000 messages; unpriced ones come after."""
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG, limit=None)
    costs = [a.cost_per_1000_messages for a in ranked]
    priced = [c for c in costs if c is not None]
    assert priced == sorted(priced)
    assert costs[: len(priced)] == priced


def test_missing_price_is_said() -> None:
    """An unpriced type (m6i) is ranked with no cost and a note that says so."""
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG, limit=None)
    m6i = [a for a in ranked if a.instance_type.startswith("m6i.")]
    assert m6i
    assert all(a.fleet_cost_per_hour is None for a in m6i)
    assert all("no price known" in a.price_note for a in m6i)
    priced = CATALOG.with_prices({"m6i.4xlarge": 0.5})
    again = _by_type(rank_alternatives(M5_XLARGE, "io", INCIDENT, priced, limit=None))
    assert again["m6i.4xlarge"].fleet_cost_per_hour == pytest.approx(
        again["m6i.4xlarge"].instances_needed * 0.5
    )
    assert "policy" in again["m6i.4xlarge"].price_note


def test_allowed_families() -> None:
    """Only the policy's families are proposed (the current type stays as the reference)."""
    only = InstanceConstraints(families=["m5", "m5d"])
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG, only, limit=None)
    assert {a.instance_type.split(".")[0] for a in ranked} <= {"m5", "m5d"}
    assert {"m5d.xlarge", "m5.4xlarge"} <= set(_by_type(ranked))


def test_architecture_defaults_to_the_current_one() -> None:
    """No arm64 type for an x86_64 fleet unless the policy allows it."""
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG, limit=None)
    assert all(CATALOG.require(a.instance_type).architecture == "x86_64" for a in ranked)
    arm = InstanceConstraints(architecture="arm64")
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG, arm, limit=None)
    others = [a for a in ranked if a.strategy is not Strategy.SAME_TYPE]
    assert others
    assert all(CATALOG.require(a.instance_type).architecture == "arm64" for a in others)


def test_keep_vcpus_and_max_price() -> None:
    """keep_vcpus holds 4 vCPUs; a price cap drops dearer and unpriced types."""
    keep = InstanceConstraints(keep_vcpus=True, max_price_per_hour=0.2)
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG, keep, limit=None)
    others = [a for a in ranked if a.strategy is not Strategy.SAME_TYPE]
    assert others
    for alt in others:
        assert alt.vcpus == 4
        assert alt.price_per_hour is not None
        assert alt.price_per_hour <= 0.2
    assert "m5d.xlarge" not in _by_type(ranked)  # $0.226 is above the cap


def test_gp3_option_only_when_the_volume_is_the_limit() -> None:
    """A plateau below the instance baseline adds the gp3 option and caps EBS sizes at it."""
    plain = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG, limit=None)
    assert all(a.strategy is not Strategy.GP3_THROUGHPUT for a in plain)
    volume_bound = INCIDENT.model_copy(update={"volume_mb_s": 125.0})
    ranked = rank_alternatives(M5_XLARGE, "io", volume_bound, CATALOG, limit=None)
    gp3 = next(a for a in ranked if a.strategy is Strategy.GP3_THROUGHPUT)
    assert gp3.instance_type == "m5.xlarge"
    assert gp3.sustained_mb_s == pytest.approx(143.75)
    mib = math.ceil(143.75 / 1.048576)
    extra = (mib - 125) * GP3_USD_PER_MIB_S_MONTH / 730
    assert gp3.price_per_hour == pytest.approx(0.192 + extra, abs=1e-4)
    assert f"{mib} MiB/s" in gp3.change
    same = next(a for a in ranked if a.strategy is Strategy.SAME_TYPE)
    assert same.sustained_mb_s == 125.0  # the volume, not the instance, holds it back
    assert gp3.instances_needed < same.instances_needed


def test_cpu_bound_prefers_compute_optimized() -> None:
    """A CPU-bound fleet with little I/O: c5 serves it cheaper than more m5."""
    demand = Demand.measured(
        M5_XLARGE, arrivals_per_min=2000, msgs_per_min=200, ebs_mb_s=5, cpu_pct=90, mem_used_pct=30
    )
    ranked = rank_alternatives(M5_XLARGE, "cpu", demand, CATALOG, limit=None)
    c5 = next(a for a in ranked if a.instance_type.startswith("c5."))
    same = next(a for a in ranked if a.strategy is Strategy.SAME_TYPE)
    assert c5.strategy is Strategy.COMPUTE_OPTIMIZED
    assert c5.limit == "cpu"
    assert c5.cost_per_1000_messages is not None
    assert same.cost_per_1000_messages is not None
    assert c5.cost_per_1000_messages < same.cost_per_1000_messages
    assert all(not CATALOG.require(a.instance_type).local_nvme for a in ranked)


def test_memory_bound_prefers_memory_optimized() -> None:
    """A memory-bound fleet: r5 holds more work per instance, so it ranks above more m5."""
    demand = Demand.measured(
        M5_XLARGE, arrivals_per_min=2000, msgs_per_min=200, cpu_pct=30, mem_used_pct=95
    )
    ranked = rank_alternatives(M5_XLARGE, "memory", demand, CATALOG, limit=None)
    r5 = next(a for a in ranked if a.instance_type.startswith("r5."))
    same = next(a for a in ranked if a.strategy is Strategy.SAME_TYPE)
    assert r5.strategy is Strategy.MEMORY_OPTIMIZED
    assert same.limit == "memory"
    assert r5.cost_per_1000_messages is not None
    assert same.cost_per_1000_messages is not None
    assert r5.cost_per_1000_messages < same.cost_per_1000_messages
    # without a memory measurement, a type with less memory per vCPU is never proposed
    blind = demand.model_copy(update={"memory_gib_per_rate": None})
    for alt in rank_alternatives(M5_XLARGE, "io", blind, CATALOG, limit=None):
        facts = CATALOG.require(alt.instance_type)
        assert facts.memory_gib / facts.vcpus >= 4


@settings(max_examples=30, deadline=None)
@given(st.floats(100, 20_000), st.floats(10, 500), st.floats(1, 400))
def test_every_fleet_serves_the_arrivals(arrivals: float, rate: float, mb_s: float) -> None:
    """instances x per-instance capacity covers arrivals, and one instance fewer would not."""
    demand = Demand.measured(
        M5_XLARGE, arrivals_per_min=arrivals, msgs_per_min=rate, ebs_mb_s=mb_s, cpu_pct=20
    )
    for alt in rank_alternatives(M5_XLARGE, "io", demand, CATALOG, limit=None):
        # per_instance_msgs_per_min is stored rounded to 2 decimals
        high = alt.per_instance_msgs_per_min + 0.005
        low = alt.per_instance_msgs_per_min - 0.005
        assert alt.instances_needed * high >= arrivals
        assert alt.instances_needed == 1 or (alt.instances_needed - 1) * low < arrivals


def test_table_renders_every_row_and_the_price_gaps() -> None:
    """The text table has a header, a row per option, and says 'no price' where unknown."""
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG, limit=None)
    lines = render_alternatives(ranked, details=False)
    assert lines[0].split()[:2] == ["type", "option"]
    assert len(lines) == len(ranked) + 1
    assert any(line.startswith("m5d.xlarge") and "local NVMe" in line for line in lines)
    assert any("no price" in line for line in lines)
    detailed = render_alternatives(ranked[:3])
    assert any("instance store" in line for line in detailed)
    assert any(line.startswith("every option: sized at 90%") for line in detailed)
    assert render_alternatives([]) == [
        "no alternative instance types pass the policy's constraints"
    ]


def test_recommendation_json_carries_alternatives() -> None:
    """The advice JSON lists the ranked alternatives under the recommendation."""
    ranked = rank_alternatives(M5_XLARGE, "io", INCIDENT, CATALOG)
    rec = Recommendation(
        at=INCIDENT_TIME,
        group="workers",
        desired_capacity=12,
        instance_type="m5d.xlarge",
        reason="move the hot I/O to local NVMe",
        alternatives=ranked,
    )
    doc = Advice(recommendations=[rec]).to_json_dict()
    first = doc["recommendations"][0]["alternatives"][0]
    assert first["instance_type"] == "m5d.xlarge"
    assert first["strategy"] == "local_nvme"
    assert set(first) >= {"instances_needed", "fleet_cost_per_hour", "cost_per_1000_messages"}
    bare = Recommendation(
        at=INCIDENT_TIME, group="g", desired_capacity=1, instance_type=None, reason="r"
    )
    assert bare.model_dump(mode="json")["alternatives"] == []


def test_gp3_lifts_a_plateaued_volume_to_the_instance_baseline() -> None:
    """Throughput flat at 125 MB/s on m5.xlarge: provision up to 143.75 MB/s, fewer instances."""
    demand = Demand.measured(
        M5_XLARGE,
        arrivals_per_min=1300,
        msgs_per_min=50,
        ebs_mb_s=125,
        cpu_pct=10,
        mem_used_pct=40,
        volume_mb_s=125,
    )
    ranked = rank_alternatives(M5_XLARGE, "io", demand, CATALOG, limit=None)
    gp3 = next(a for a in ranked if a.strategy is Strategy.GP3_THROUGHPUT)
    same = next(a for a in ranked if a.strategy is Strategy.SAME_TYPE)
    assert gp3.sustained_mb_s == pytest.approx(143.75)
    assert gp3.instances_needed == math.ceil(1300 / (UTILIZATION * 50 * 143.75 / 125))
    assert same.instances_needed == math.ceil(1300 / (UTILIZATION * 50))
    assert any("plateaus at 125 MB/s" in a for a in gp3.assumptions)


@pytest.mark.parametrize("state", ["io", "cpu", "memory"])
def test_ranked_rows_pass_the_models_own_validation(state: str) -> None:
    """Rows are built without re-validation (speed): each must still be a valid Alternative."""
    for row in rank_alternatives(M5_XLARGE, state, INCIDENT, CATALOG, limit=None):  # type: ignore[arg-type]
        assert Alternative.model_validate(row.model_dump()) == row
