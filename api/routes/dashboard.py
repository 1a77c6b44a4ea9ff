"""The dashboard's front-page counts."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import StoreDep
from api.fleet import zone_views
from api.read_models import read_model
from api.responses import Dashboard, documented
from api.security import PersonCaller
from sinks import queries

router = APIRouter(prefix="/api/v1", tags=["dashboard"], responses=documented(401, 403))


@router.get("/dashboard", response_model=Dashboard)
@read_model(Dashboard)
def dashboard(store: StoreDep, caller: PersonCaller) -> dict:
    zones = zone_views(store)
    return {
        "zones": len(zones),
        "zones_in_surplus": sorted(z for z, v in zones.items() if v.surplus),
        "nodes": queries.count_nodes(store, caller.scope),
        "workloads_by_status": queries.workloads_by_status(store, caller.scope),
        "decisions": queries.count_decisions(store, caller.scope),
        "dead_letters": queries.count_dead_letters(store) if caller.scope.everything else None,
    }
