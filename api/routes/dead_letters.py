"""Records that could not be decoded, validated or applied, with the reason."""

from __future__ import annotations

from fastapi import APIRouter, Query

from api.deps import StoreDep
from api.responses import DeadLetter, documented
from api.security import AdminCaller
from sinks import queries

router = APIRouter(prefix="/api/v1", tags=["dead letters"], responses=documented(401, 403, 422))


@router.get("/dead-letters", response_model=list[DeadLetter])
def dead_letters(store: StoreDep, _caller: AdminCaller, limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
    return queries.dead_letters(store, limit)
