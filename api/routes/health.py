"""Liveness and what the DuckDB file holds."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SettingsDep, StoreDep
from api.responses import Health
from sinks import queries

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(store: StoreDep, settings: SettingsDep) -> dict:
    return {"status": "ok", "bootstrap": settings.bootstrap, "duckdb": str(store.path), **queries.table_counts(store)}
