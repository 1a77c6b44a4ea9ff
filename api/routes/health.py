"""Liveness and what the DuckDB file holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import SettingsDep, StoreDep
from api.responses import Health
from sinks import queries

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "Degraded"}})
def healthz(request: Request, store: StoreDep, settings: SettingsDep) -> Any:
    """200 when the broker answers, the worker and the DuckDB sink keep up; 503 saying what is wrong otherwise
    (``toogreen.kafka.health``). An API started without a health monitor only says that it answers."""
    body: dict[str, Any] = {"status": "ok", "bootstrap": settings.bootstrap, "duckdb": str(store.path),
                            **queries.table_counts(store)}  # fmt: skip
    monitor = getattr(request.app.state, "health", None)
    if monitor is None:
        return body
    verdict = monitor.verdict()
    body.update(problems=verdict.problems, checks=verdict.checks)
    if verdict.ok:
        return body
    return JSONResponse({**body, "status": "degraded"}, status_code=503)
