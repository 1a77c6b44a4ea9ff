"""The zone page's forecast beside the actuals, in a real browser: a forecast published on ``grid.forecasts`` (as
the forecaster publishes one) reaches the DuckDB file through the sink, ``GET /api/v1/zones/FR`` serves it with the
live readings' hourly means, and the page draws both with the band."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Live
from toogreen.domain.forecast import Forecast, ForecastPoint
from toogreen.kafka.producer import RecordProducer

pytestmark = pytest.mark.integration
HOUR_MS = 3_600_000


def test_the_zone_page_draws_the_latest_forecast_beside_the_actuals(page: Page, live: Live):
    now = int(time.time() * 1000)
    issued = now - now % HOUR_MS - 2 * HOUR_MS  # two hours ago: it said something of the hour under way
    points = tuple(ForecastPoint(issued + i * HOUR_MS, 40.0 + i, 30.0 + i, 55.0 + i) for i in range(36))
    forecast = Forecast("FR", issued, HOUR_MS, points, "ets", "statsmodels", 0.8)
    producer = RecordProducer(live.stack.settings.bootstrap)
    producer.send("grid.forecasts", "FR", forecast.to_record(), timestamp_ms=issued)
    producer.flush(require_delivered=True)
    del producer  # closed now, not after the broker has gone
    deadline = time.monotonic() + 60
    while (live.get("admin", "/api/v1/zones/FR").json().get("forecast") or {}).get("issued_ms") != issued:
        assert time.monotonic() < deadline, "the forecast never reached GET /api/v1/zones/FR"
        time.sleep(0.5)
    detail = live.get("admin", "/api/v1/zones/FR").json()
    assert detail["actuals"] and detail["actuals"][-1]["forecast_gco2_per_kwh"] is not None

    live.sign_in(page, "admin", "#/map")
    page.select_option("#forecast-zone", "FR")
    plot = page.locator('#forecast-plot[data-zone="FR"]')
    expect(plot).to_have_attribute("data-forecast-points", "36")
    expect(plot.locator("canvas")).to_have_count(1)
    assert int(plot.get_attribute("data-actuals") or 0) >= 1
    assert int(plot.get_attribute("data-forecast-then") or 0) >= 1  # an hour it forecast, beside what happened
    expect(page.locator("#forecast-caption")).to_contain_text("ets")
    expect(page.locator("#forecast-caption")).to_contain_text("80 % band")
