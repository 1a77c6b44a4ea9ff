"""The forecaster's issuer: history kept per zone, one forecast per issue boundary from the readings before it,
the vendor first and the model when the vendor fails."""

from __future__ import annotations

import math

from connectors.forecaster import ForecastIssuer, ZoneHistory
from toogreen.domain.forecast import HOUR_MS, Forecast, ForecastPoint
from toogreen.settings import ForecastSettings, Settings

T0 = 1_580_515_200_000  # 2020-02-01 00:00 UTC


def readings(zone: str, start: int, hours: int, every_ms: int = 30 * 60_000):
    for t in range(start, start + hours * HOUR_MS, every_ms):
        yield {
            "zone": zone,
            "ts_ms": t,
            "carbon_intensity_gco2_per_kwh": 200 + 80 * math.sin(t / (24 * HOUR_MS) * 6.283),
        }


def test_history_keeps_order_the_last_days_and_the_later_duplicate():
    h = ZoneHistory(keep_ms=10 * HOUR_MS)
    for t in (5, 1, 3):
        h.add(t * HOUR_MS, float(t))
    h.add(3 * HOUR_MS, 30.0)
    assert h.readings() == [(HOUR_MS, 1.0), (3 * HOUR_MS, 30.0), (5 * HOUR_MS, 5.0)]
    h.add(14 * HOUR_MS, 14.0)
    assert [t for t, _ in h.readings()] == [5 * HOUR_MS, 14 * HOUR_MS]


def test_one_forecast_per_boundary_from_the_readings_before_it():
    settings = Settings(forecast=ForecastSettings(issue_interval_h=6))
    issuer = ForecastIssuer(settings)
    out: list[Forecast] = []
    for zone in ("GB", "FR"):
        for r in readings(zone, T0 - 3 * 24 * HOUR_MS, 3 * 24 + 13):
            out += issuer.add(r)
    gb = [f for f in out if f.zone == "GB"]
    # boundaries every 6 h; the first two days are too little history to fit on
    assert [f.issued_ms for f in gb][-3:] == [T0, T0 + 6 * HOUR_MS, T0 + 12 * HOUR_MS]
    assert all(f.start_ms == f.issued_ms for f in gb) and issuer.stats.too_little_history > 0
    assert issuer.latest.get("FR") is not None and issuer.latest.get("FR").issued_ms == T0 + 12 * HOUR_MS
    assert {f.model for f in out} == {"ets"}


def test_the_vendor_goes_first_and_a_failing_vendor_falls_back_to_the_model():
    settings = Settings(forecast=ForecastSettings(issue_interval_h=24))
    vendor_forecast = Forecast("FR", T0, HOUR_MS, (ForecastPoint(T0, 40, 36, 44),), "electricitymaps",
                               "electricitymaps", 0.0)  # fmt: skip

    def vendor(zone: str) -> Forecast:
        if zone == "GB":
            raise RuntimeError("no forecast in this plan")
        return vendor_forecast

    issuer = ForecastIssuer(settings, vendor)
    out = []
    for zone in ("FR", "GB"):
        for r in readings(zone, T0 - 3 * 24 * HOUR_MS, 3 * 24 + 1):
            out += issuer.add(r)
    by_zone = {f.zone: f for f in out}
    assert by_zone["FR"] is vendor_forecast and by_zone["GB"].model == "ets"
    assert issuer.stats.vendor_failures and "no forecast in this plan" in issuer.stats.vendor_failures[0]
