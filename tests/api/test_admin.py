"""/api/v1/admin: surplus events published over their span."""

import time

from toogreen.settings import Settings


def test_admin_surplus_event_publishes_admin_readings(client, anon):
    body = {"zone": "FR", "curtailment_mw": 1500, "minutes": 0.01}
    assert anon.post("/api/v1/admin/surplus-events", json=body).status_code == 401
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


def test_tokens_are_issued_once_and_stored_hashed(client, anon):
    r = client.post("/api/v1/admin/tokens", json={"role": "developer", "subject": "ada"})
    assert r.status_code == 201
    token = r.json()["token"]
    assert anon.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json() == {
        "role": "developer",
        "subject": "ada",
    }
    stored = client.store.query("SELECT * FROM api_tokens")
    assert len(stored) == 1 and token not in str(stored) and stored[0]["token_sha256"] != token
    assert client.post("/api/v1/admin/tokens", json={"role": "node", "subject": "x"}).status_code == 422
    assert client.post("/api/v1/admin/tokens", json={"role": "gamer", "subject": ""}).status_code == 422
