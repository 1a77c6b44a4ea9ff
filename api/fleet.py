"""The nodes' current scores as the API shows them: DuckDB rows turned into the domain's views, judged by the
router's own ``route`` against a reference workload."""

from __future__ import annotations

import time
from typing import Any

from sinks import queries
from sinks.duckdb_store import Store
from toogreen.domain.node_state import to_node_view
from toogreen.domain.scoring import route
from toogreen.domain.views import WorkloadSpec, ZoneView
from toogreen.settings import Settings

REFERENCE_WORKLOAD = WorkloadSpec(workload_id="reference", vram_mb=1, expected_hours=1.0)


def now_ms() -> int:
    return int(time.time() * 1000)


def zone_views(store: Store) -> dict[str, ZoneView]:
    """Each zone's routing view from its newest tumbling window in DuckDB."""
    return {
        zone: ZoneView(
            zone=zone,
            carbon_gco2_per_kwh=r["carbon_mean"],
            renewable_pct=r["renewable_mean"],
            price_eur_per_mwh=r["price_mean"],
            surplus=bool(r["surplus"]),
            surplus_strength=r["surplus_strength"] or 0.0,
            window_start_ms=r["window_start_ms"],
            last_ts_ms=r["last_ts_ms"],
        )
        for zone, r in queries.latest_windows(store, "tumbling").items()
    }


def _node_state(row: dict[str, Any]) -> dict[str, Any]:
    """The node-state shape of ``toogreen.domain.node_state`` from a ``nodes`` row."""
    state: dict[str, Any] = {}
    if row["node_type"] is not None:
        state["registration"] = row
    if row["last_seen_ms"] is not None:
        state["telemetry"] = {
            "last_seen_ms": row["last_seen_ms"], "util_rolling_pct": row["sm_util_pct"], "health": row["health"],
            "mem_used_mb": row["mem_used_mb"], "mem_total_mb": row["mem_total_mb"],
        }  # fmt: skip
    return state


def holds_by_node(store: Store) -> dict[str, dict[str, dict[str, Any]]]:
    """{node_id: {workload_id: {"vram_mb", "mig_profile"}}} of the active workloads."""
    holds: dict[str, dict[str, dict[str, Any]]] = {}
    for r in queries.active_holds(store):
        holds.setdefault(r["node_id"], {})[r["workload_id"]] = {
            "vram_mb": r["vram_mb"],
            "mig_profile": r["mig_profile"],
        }
    return holds


def scored_nodes(store: Store, settings: Settings, visible: set[str] | None = None) -> list[dict[str, Any]]:
    """The nodes (those in ``visible``, or all) with their reserved VRAM, tier, score and routability right now;
    scores are always judged over the whole fleet, so a node scores the same whoever asks."""
    rows = queries.nodes(store)
    holds = holds_by_node(store)
    views = [v for r in rows if (v := to_node_view(_node_state(r), holds.get(r["node_id"], {})))]
    decision = route(
        REFERENCE_WORKLOAD, views, zone_views(store), now_ms(), settings.scoring, settings.pricing,
        migration=settings.migration,
    )  # fmt: skip
    scored = {c.node_id: c for c in decision.alternatives}
    out = []
    for r in rows:
        if visible is not None and r["node_id"] not in visible:
            continue
        c = scored.get(r["node_id"])
        held = holds.get(r["node_id"], {})
        out.append({
            **r,
            "vram_reserved_mb": int(sum(h["vram_mb"] or 0 for h in held.values())),
            "tier": c.tier if c else None,
            "routable": bool(c and c.eligible),
            "not_routable_because": c.excluded_reason if c else "no registration or telemetry yet",
            "score": c.score if c else None,
            "carbon_gco2_per_kwh": c.carbon_gco2_per_kwh if c else None,
            "price_eur_per_gpu_hour": c.price_eur_per_gpu_hour if c else None,
            "holds": [{"workload_id": w, **h} for w, h in sorted(held.items())],
        })  # fmt: skip
    return out
