"""Emissions avoided against the baseline, in total, by zone and by provider type."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SettingsDep, StoreDep
from api.read_models import read_model
from api.responses import Sustainability, documented
from api.security import PersonCaller
from sinks import queries

router = APIRouter(prefix="/api/v1", tags=["sustainability"], responses=documented(401, 403))


@router.get("/sustainability", response_model=Sustainability)
@read_model(Sustainability)
def sustainability(store: StoreDep, settings: SettingsDep, caller: PersonCaller) -> dict:
    baseline = float(settings.settlement.baseline_gco2_per_kwh)

    def grouped(group: str) -> list[dict]:
        rows = queries.sustainability_by(store, caller.scope, group, baseline)
        return [{**r, "gco2_saved": r["gco2_baseline"] - r["gco2_actual"]} for r in rows]

    return {
        "baseline": f"{settings.settlement.baseline_name} {baseline:g} gCO2eq/kWh",
        "totals": queries.sustainability_totals(store, caller.scope),
        "by_zone": grouped("zone"),
        "by_provider_type": grouped("provider_type"),
    }
