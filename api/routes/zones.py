"""Grid zones: the latest reading and windows of each, one zone with its forecast beside the actuals, and a zone's
window history."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from api.deps import StoreDep
from api.fleet import now_ms
from api.read_models import read_model
from api.responses import Zone, ZoneHistory, documented
from api.security import PersonCaller
from sinks import queries
from toogreen.domain.zones import ZONES

router = APIRouter(prefix="/api/v1/zones", tags=["zones"], responses=documented(401, 403, 404, 422))


class ForecastPointOut(BaseModel):
    ts_ms: int
    mean_gco2_per_kwh: float
    low_gco2_per_kwh: float
    high_gco2_per_kwh: float


class ForecastOut(BaseModel):
    """A ``grid.forecasts`` record: who made it, when, and one point per step from the step it was issued in."""

    zone: str
    issued_ms: int
    step_ms: int
    model: str
    source: str
    band_coverage: float
    points: list[ForecastPointOut]


class ActualStep(BaseModel):
    """One step of what happened: the mean of the readings in it, and what the forecast said of it beforehand."""

    ts_ms: int
    mean_gco2_per_kwh: float
    readings: int
    forecast_gco2_per_kwh: float | None  # the latest forecast issued before the step began (None: none was)
    forecast_issued_ms: int | None


class ZoneDetail(Zone):
    forecast: ForecastOut | None  # the latest issue (None: no forecast yet)
    actuals: list[ActualStep]


def _zone(code: str, latest: dict, tumbling: dict, hopping: dict, now: int) -> dict:
    reading = latest.get(code)
    window = tumbling.get(code) or {}
    return {
        "zone": code,
        "name": ZONES[code].name if code in ZONES else code,
        "latest": reading,
        "staleness_s": None if reading is None else round((now - reading["ts_ms"]) / 1000, 1),
        "window_5m": tumbling.get(code),
        "window_1h": hopping.get(code),
        "surplus": bool(window.get("surplus")),
        "surplus_reason": window.get("surplus_reason"),
    }


@router.get("", response_model=list[Zone])
@read_model(list[Zone])
def zones(store: StoreDep, _caller: PersonCaller) -> list[dict]:
    now = now_ms()
    latest = queries.latest_readings(store)
    tumbling = queries.latest_windows(store, "tumbling")
    hopping = queries.latest_windows(store, "hopping")
    return [_zone(code, latest, tumbling, hopping, now) for code in sorted(set(latest) | set(tumbling))]


@router.get("/{zone}", response_model=ZoneDetail)
def zone(
    store: StoreDep,
    _caller: PersonCaller,
    zone: str,
    hours: int = Query(48, ge=1, le=24 * 14, description="how far back the actuals go"),
) -> dict:
    """The zone now, its latest forecast, and the actuals of the last ``hours`` (hourly means, or the forecast's
    steps) each beside what the forecast issued before it said."""
    if zone not in ZONES:
        raise HTTPException(404, f"unknown zone {zone!r}: known zones are {', '.join(ZONES)}")
    now = now_ms()
    latest = queries.latest_readings(store)
    since = (latest[zone]["ts_ms"] if zone in latest else now) - hours * 3_600_000
    forecasts = queries.zone_forecasts(store, zone, since)
    step_ms = forecasts[-1]["step_ms"] if forecasts else 3_600_000
    actuals = []
    for step in queries.hourly_intensity(store, zone, since, step_ms):
        said, issued = None, None
        for f in forecasts:  # oldest first: the last one issued at or before the step's start says
            if f["issued_ms"] > step["ts_ms"]:
                break
            i = (step["ts_ms"] - f["points"][0]["ts_ms"]) // f["step_ms"] if f["points"] else -1
            if 0 <= i < len(f["points"]):
                said, issued = f["points"][i]["mean_gco2_per_kwh"], f["issued_ms"]
        actuals.append({**step, "forecast_gco2_per_kwh": said, "forecast_issued_ms": issued})
    tumbling = queries.latest_windows(store, "tumbling")
    hopping = queries.latest_windows(store, "hopping")
    return {**_zone(zone, latest, tumbling, hopping, now), "forecast": forecasts[-1] if forecasts else None,
            "actuals": actuals}  # fmt: skip


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
