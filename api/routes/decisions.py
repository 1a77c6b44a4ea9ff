"""Routing decisions, newest first."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from api.deps import StoreDep
from api.responses import Decision, documented
from api.routes.workloads import decision_from_row
from api.security import PersonCaller
from sinks import queries

router = APIRouter(prefix="/api/v1", tags=["decisions"], responses=documented(401, 403, 422))
DecisionType = Literal["initial", "reroute", "rejected", "queued", "no_move"]


@router.get("/decisions", response_model=list[Decision])
def decisions(
    store: StoreDep,
    caller: PersonCaller,
    workload_id: str | None = None,
    type: DecisionType | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict]:
    return [decision_from_row(r) for r in queries.decisions(store, caller.scope, workload_id, type, limit)]
