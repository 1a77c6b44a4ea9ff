"""Who the caller's token says it is (the dashboard signs in with it)."""

from __future__ import annotations

from fastapi import APIRouter

from api.responses import Me, documented
from api.security import Caller

router = APIRouter(prefix="/api/v1", tags=["me"], responses=documented(401))


@router.get("/me", response_model=Me)
def me(caller: Caller) -> dict:
    return {"role": caller.role.value, "subject": caller.subject}
