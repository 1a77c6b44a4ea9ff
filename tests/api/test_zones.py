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
