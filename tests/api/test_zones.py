"""/api/v1/zones and a zone's history."""

from sinks.columns import avro_fields


def test_zones_latest_and_windows(client):
    zones = {z["zone"]: z for z in client.get("/api/v1/zones").json()}
    assert set(zones) == {"FR", "DE"}
    assert zones["FR"]["window_5m"]["carbon_mean"] == 60.0 and zones["FR"]["staleness_s"] < 60
    assert zones["FR"]["latest"]["source"] == "test" and zones["FR"]["window_1h"] is None


def test_a_window_carries_exactly_the_fields_of_its_avro_schema(client):
    window = client.get("/api/v1/zones").json()[0]["window_5m"]
    assert list(window) == [f.name for f in avro_fields("zone_window.avsc")]


def test_unknown_zone_history_says_which_exist(client):
    r = client.get("/api/v1/zones/XX/history")
    assert r.status_code == 404 and "known zones are" in r.json()["detail"]
    assert client.get("/api/v1/zones/FR/history").json()["windows"][0]["count"] == 1
    assert client.get("/api/v1/zones/FR/history?kind=sliding").status_code == 422


def test_a_zone_shows_its_latest_forecast_beside_the_actuals_it_forecast(client):
    """Readings over three hours and a forecast issued before them: each hour's actual mean comes with what that
    forecast said of it; a bad forecast record is dead-lettered by the sink, never served."""
    from sinks.kafka_sink import rows_from_messages
    from tests.builders import grid_reading, messages
    from toogreen.domain.forecast import Forecast, ForecastPoint

    hour = 3_600_000
    now = int(__import__("time").time() * 1000)
    first = now - now % hour - 3 * hour
    points = tuple(ForecastPoint(first + i * hour, 100.0 + i, 90.0 + i, 110.0 + i) for i in range(36))
    forecast = Forecast("FR", first, hour, points, "ets", "statsmodels", 0.8)
    bad = {**forecast.to_record(), "issued_ms": first + 1, "band_coverage": 1.5}
    readings = [grid_reading("FR", first + i * hour // 2, 80.0 + 10 * (i // 2)) for i in range(6)]
    records = [("grid.forecasts", forecast.to_record()), ("grid.forecasts", bad)]
    records += [("grid.readings", r) for r in readings]
    rows, events = rows_from_messages(messages(records))
    assert len(rows["grid_forecasts"]) == 1 and "band_coverage" in rows["dead_letters"][0]["reason"]
    client.store.write(rows, events)

    body = client.get("/api/v1/zones/FR?hours=4").json()
    assert body["zone"] == "FR" and body["window_5m"]["carbon_mean"] == 60.0
    assert body["forecast"]["issued_ms"] == first and body["forecast"]["model"] == "ets"
    assert len(body["forecast"]["points"]) == 36 and body["forecast"]["points"][1]["high_gco2_per_kwh"] == 111.0
    by_hour = {a["ts_ms"]: a for a in body["actuals"]}
    for i in range(3):
        step = by_hour[first + i * hour]
        assert step["mean_gco2_per_kwh"] == 80.0 + 10 * i and step["readings"] == 2
        assert step["forecast_gco2_per_kwh"] == 100.0 + i and step["forecast_issued_ms"] == first
    assert client.get("/api/v1/zones/DE").json()["forecast"] is None
    assert client.get("/api/v1/zones/XX").status_code == 404
