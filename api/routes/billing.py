"""Billing records with their payouts, and totals."""

from __future__ import annotations

from fastapi import APIRouter, Query

from api.deps import SettingsDep, StoreDep
from api.read_models import read_model
from api.responses import Billing, documented
from api.security import PersonCaller
from sinks import queries

router = APIRouter(prefix="/api/v1", tags=["billing"], responses=documented(401, 403, 422))


@router.get("/billing", response_model=Billing)
@read_model(Billing)
def billing(
    store: StoreDep,
    settings: SettingsDep,
    caller: PersonCaller,
    workload_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> dict:
    return {
        "currency": settings.pricing.currency,
        "totals": queries.billing_totals(store, caller.scope),
        "records": queries.billing_records(store, caller.scope, workload_id, limit),
    }
