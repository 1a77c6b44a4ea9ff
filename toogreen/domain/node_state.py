"""Per-node state rolled up from registrations and telemetry, and the view routing takes of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from toogreen.domain.views import NodeView

UTIL_SMOOTHING = 0.3  # weight of the newest sample in the rolling utilisation


def apply_registration(state: dict[str, Any] | None, reg: dict[str, Any]) -> dict[str, Any]:
    """Node state after a (re-)registration; telemetry already seen is kept."""
    base = dict(state or {})
    base["registration"] = {
        k: reg[k]
        for k in (
            "node_id",
            "provider",
            "node_type",
            "gpu_model",
            "vram_mb",
            "zone",
            "lat",
            "lng",
            "pue",
            "mig_capable",
            "declared_carbon_gco2_per_kwh",
            "max_power_w",
        )
    }
    return base


def apply_telemetry(state: dict[str, Any] | None, sample: dict[str, Any]) -> dict[str, Any]:
    """Node state after one telemetry sample; older samples than the newest seen are ignored."""
    base = dict(state or {})
    prev = base.get("telemetry")
    if prev and sample["ts_ms"] <= prev["last_seen_ms"]:
        return base
    util = sample["sm_util_pct"]
    rolling = util if not prev else UTIL_SMOOTHING * util + (1 - UTIL_SMOOTHING) * prev["util_rolling_pct"]
    base["telemetry"] = {
        "last_seen_ms": sample["ts_ms"],
        "util_pct": util,
        "util_rolling_pct": round(rolling, 3),
        "power_w": sample["power_w"],
        "energy_j": sample.get("energy_j"),
        "mem_used_mb": sample["mem_used_mb"],
        "mem_total_mb": sample["mem_total_mb"],
        "health": sample["health"],
        "mig_slices_free": sample.get("mig_slices_free", 0),
    }
    return base


def to_node_view(state: dict[str, Any], reservations: Mapping[str, Mapping[str, Any]]) -> NodeView | None:
    """What routing sees; None until the node has both registered and reported telemetry. ``reservations`` are
    the router's holds on the node ({workload_id: {"vram_mb", "mig_profile"}})."""
    reg, tel = state.get("registration"), state.get("telemetry")
    if not reg or not tel:
        return None
    # The router's own reservations cover workloads the node has not yet reported in its memory figures.
    used = max(tel["mem_used_mb"], sum(int(r["vram_mb"]) for r in reservations.values()))
    slices = Counter(r["mig_profile"] for r in reservations.values() if r.get("mig_profile"))
    return NodeView(
        node_id=reg["node_id"],
        node_type=reg["node_type"],
        gpu_model=reg["gpu_model"],
        zone=reg["zone"],
        pue=reg["pue"],
        vram_mb=reg["vram_mb"],
        vram_free_mb=max(0, min(reg["vram_mb"], tel["mem_total_mb"]) - used),
        util_pct=tel["util_rolling_pct"],
        health=tel["health"],
        last_seen_ms=tel["last_seen_ms"],
        declared_carbon_gco2_per_kwh=reg.get("declared_carbon_gco2_per_kwh"),
        mig_capable=bool(reg.get("mig_capable")),
        max_power_w=float(reg.get("max_power_w") or 0.0),
        whole_tenants=sum(1 for r in reservations.values() if not r.get("mig_profile")),
        mig_used=tuple(sorted(slices.items())),
    )
