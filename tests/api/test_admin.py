"""/api/v1/admin: surplus events published over their span."""

import time

from toogreen.settings import Settings


def test_admin_surplus_event_publishes_admin_readings(client):
    body = {"zone": "FR", "curtailment_mw": 1500, "minutes": 0.01}
    assert client.post("/api/v1/admin/surplus-events", json=body).status_code == 401
    headers = {"Authorization": f"Bearer {Settings().api.admin_token}"}
    bad = client.post("/api/v1/admin/surplus-events", json={**body, "zone": "XX"}, headers=headers)
    assert bad.status_code == 422 and "known zones" in bad.text
    r = client.post("/api/v1/admin/surplus-events", json=body, headers=headers)
    assert r.status_code == 202 and r.json()["readings"] == 1
    deadline = time.time() + 5
    while not client.producer.sent and time.time() < deadline:
        time.sleep(0.05)
    topic, key, reading = client.producer.sent[0]
    assert topic == "grid.readings" and key == "FR"
    assert reading["source"] == "admin" and reading["curtailment_mw"] == 1500.0
    assert reading["carbon_intensity_gco2_per_kwh"] == 60.0  # carried over from the zone's latest reading
