"""The dashboard's front-page counts."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ScopeDep, StoreDep
from api.fleet import zone_views
from api.responses import Dashboard
from sinks import queries

router = APIRouter(prefix="/api/v1", tags=["dashboard"])


@router.get("/dashboard", response_model=Dashboard)
def dashboard(store: StoreDep, scope: ScopeDep) -> dict:
    zones = zone_views(store)
    return {
        "zones": len(zones),
        "zones_in_surplus": sorted(z for z, v in zones.items() if v.surplus),
        "nodes": queries.count_nodes(store, scope),
        "workloads_by_status": queries.workloads_by_status(store, scope),
        "decisions": queries.count_decisions(store, scope),
        "dead_letters": queries.count_dead_letters(store) if scope.everything else None,
    }
