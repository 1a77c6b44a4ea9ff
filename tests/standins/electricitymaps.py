"""A stand-in for the Electricity Maps API v3, serving its documented response shapes."""

from __future__ import annotations

from fastapi import FastAPI, Header, Query
from fastapi.responses import JSONResponse

TOKEN = "test-token"
ZONES = {"DE": (302.0, 45.5, 88.2), "FR": (48.0, 24.0, 61.0)}


def create(rate_limit_first: int = 0) -> FastAPI:
    app = FastAPI()
    app.state.calls = 0
    app.state.limited = rate_limit_first

    def guard(token: str | None, zone: str) -> JSONResponse | None:
        app.state.calls += 1
        if app.state.limited > 0:
            app.state.limited -= 1
            return JSONResponse({"message": "Too many requests"}, status_code=429, headers={"Retry-After": "0"})
        if token != TOKEN:
            return JSONResponse({"message": "Invalid authentication token"}, status_code=401)
        if zone not in ZONES:
            return JSONResponse({"message": f"Zone '{zone}' does not exist."}, status_code=404)
        return None

    def point(zone: str, hour: int) -> dict:
        ci, _ren, _price = ZONES[zone]
        return {
            "zone": zone, "carbonIntensity": ci + hour, "datetime": f"2026-11-27T{hour:02d}:00:00.000Z",
            "updatedAt": "2026-11-27T12:05:00.000Z", "createdAt": "2026-11-24T12:00:00.000Z",
            "emissionFactorType": "lifecycle", "isEstimated": hour > 10, "estimationMethod": None,
        }  # fmt: skip

    def breakdown(zone: str, hour: int) -> dict:
        return {
            "zone": zone, "datetime": f"2026-11-27T{hour:02d}:00:00.000Z",
            "renewablePercentage": ZONES[zone][1] + hour, "fossilFreePercentage": 80,
            "powerConsumptionTotal": 55000, "isEstimated": False,
        }  # fmt: skip

    @app.get("/v3/carbon-intensity/latest")
    def ci_latest(zone: str = Query(...), auth_token: str | None = Header(None)):
        return guard(auth_token, zone) or point(zone, 12)

    @app.get("/v3/carbon-intensity/history")
    def ci_history(zone: str = Query(...), auth_token: str | None = Header(None)):
        return guard(auth_token, zone) or {"zone": zone, "history": [point(zone, h) for h in range(13)]}

    @app.get("/v3/power-breakdown/latest")
    def pb_latest(zone: str = Query(...), auth_token: str | None = Header(None)):
        return guard(auth_token, zone) or breakdown(zone, 12)

    @app.get("/v3/power-breakdown/history")
    def pb_history(zone: str = Query(...), auth_token: str | None = Header(None)):
        return guard(auth_token, zone) or {"zone": zone, "history": [breakdown(zone, h) for h in range(0, 13, 2)]}

    @app.get("/v3/price-day-ahead/latest")
    def price(zone: str = Query(...), auth_token: str | None = Header(None)):
        body = {"zone": zone, "datetime": "2026-11-27T12:00:00.000Z", "unit": "EUR/MWh", "source": "stand-in"}
        return guard(auth_token, zone) or {**body, "value": ZONES[zone][2]}

    @app.get("/v3/carbon-intensity/forecast")
    def ci_forecast(zone: str = Query(...), auth_token: str | None = Header(None)):
        # 24 hourly points from 12:00, one missing (15:00), a dip in the night
        ci = ZONES.get(zone, (0.0,))[0]
        hours = [h for h in range(12, 36) if h != 15]
        rows = [{"carbonIntensity": ci - (40 if 26 <= h <= 30 else 0) + h % 3,
                 "datetime": f"2026-11-{27 + h // 24}T{h % 24:02d}:00:00.000Z"} for h in hours]  # fmt: skip
        return guard(auth_token, zone) or {"zone": zone, "forecast": rows, "updatedAt": "2026-11-27T11:55:00.000Z"}

    return app
