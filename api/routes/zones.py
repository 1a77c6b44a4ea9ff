"""Grid zones: the latest reading and windows of each, and a zone's window history."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query

from api.deps import StoreDep
from api.fleet import now_ms
from api.read_models import read_model
from api.responses import Zone, ZoneHistory, documented
from api.security import PersonCaller
from sinks import queries
from toogreen.domain.zones import ZONES

router = APIRouter(prefix="/api/v1/zones", tags=["zones"], responses=documented(401, 403, 404, 422))


@router.get("", response_model=list[Zone])
@read_model(list[Zone])
def zones(store: StoreDep, _caller: PersonCaller) -> list[dict]:
    now = now_ms()
    latest = queries.latest_readings(store)
    tumbling = queries.latest_windows(store, "tumbling")
    hopping = queries.latest_windows(store, "hopping")
    out = []
    for code in sorted(set(latest) | set(tumbling)):
        reading = latest.get(code)
        window = tumbling.get(code) or {}
        out.append({
            "zone": code,
            "name": ZONES[code].name if code in ZONES else code,
            "latest": reading,
            "staleness_s": None if reading is None else round((now - reading["ts_ms"]) / 1000, 1),
            "window_5m": tumbling.get(code),
            "window_1h": hopping.get(code),
            "surplus": bool(window.get("surplus")),
            "surplus_reason": window.get("surplus_reason"),
        })  # fmt: skip
    return out


@router.get("/{zone}/history", response_model=ZoneHistory)
@read_model(ZoneHistory)
def zone_history(
    store: StoreDep,
    _caller: PersonCaller,
    zone: str,
    kind: Literal["tumbling", "hopping"] = "tumbling",
    limit: int = Query(288, ge=1, le=10000),
) -> dict:
    if zone not in ZONES:
        raise HTTPException(404, f"unknown zone {zone!r}: known zones are {', '.join(ZONES)}")
    return {"zone": zone, "kind": kind, "windows": queries.zone_history(store, zone, kind, limit)}
