"""The comparison table of alternatives that the text advice shows."""

from __future__ import annotations

from collections.abc import Sequence

from scaler.models import Alternative, Strategy

__all__ = ["STRATEGY_LABELS", "render_alternatives"]

STRATEGY_LABELS = {
    Strategy.SAME_TYPE: "more of the same",
    Strategy.LOCAL_NVME: "local NVMe",
    Strategy.SUSTAINED_EBS: "EBS covers demand",
    Strategy.CHEAPEST_EBS: "cheapest EBS/$",
    Strategy.GP3_THROUGHPUT: "gp3 throughput",
    Strategy.COMPUTE_OPTIMIZED: "compute-optimized",
    Strategy.MEMORY_OPTIMIZED: "memory-optimized",
    Strategy.OTHER_FAMILY: "other family",
}
_HEADER = ("type", "option", "instances", "fleet $/h", "$/1k msg", "EBS MB/s", "limit")


def _money(value: float | None, digits: int) -> str:
    return "no price" if value is None else f"{value:.{digits}f}"


def render_alternatives(alternatives: Sequence[Alternative], *, details: bool = True) -> list[str]:
    """Lines of a fixed-width table, then what each option changes and assumes."""
    if not alternatives:
        return ["no alternative instance types pass the policy's constraints"]
    rows = [_HEADER] + [
        (
            a.instance_type,
            STRATEGY_LABELS[a.strategy],
            str(a.instances_needed),
            _money(a.fleet_cost_per_hour, 2),
            _money(a.cost_per_1000_messages, 4),
            f"{a.sustained_mb_s:g}",
            a.limit,
        )
        for a in alternatives
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    numeric = {2, 3, 4, 5}
    lines = [
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    if details:
        shared = set.intersection(*(set(a.assumptions) for a in alternatives))
        for a in alternatives:
            lines.append(f"{a.instance_type} ({STRATEGY_LABELS[a.strategy]}): {a.change}")
            lines.extend(f"  - {text}" for text in a.assumptions if text not in shared)
            if a.price_per_hour is None or "policy" in a.price_note:
                lines.append(f"  - {a.price_note}")
        lines.extend(f"every option: {text}" for text in sorted(shared))
        bundled = next((a for a in alternatives if "on-demand price from" in a.price_note), None)
        if bundled is not None:
            lines.append(f"prices: {bundled.price_note.split(': ', 1)[1]}")
    return lines
