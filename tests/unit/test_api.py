"""The query API's handlers over a real DuckDB file (no broker: submissions use a recording producer)."""

import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from connectors.fleet_sim import SimulatedFleet
from sinks.duckdb_store import Store
from sinks.kafka_sink import rows_from_messages
from tests.conftest import grid_reading
from tests.unit.test_duckdb_store import messages
from toogreen.codec import decode
from toogreen.domain.windows import Surplus, WindowSpec, empty_window
from toogreen.settings import Settings


class RecordingProducer:
    def __init__(self):
        self.sent = []

    def send(self, topic, key, record):
        from toogreen.codec import encode

        self.sent.append((topic, key, decode(topic, encode(topic, record))))

    def flush(self, timeout_s=0):
        return None


@pytest.fixture
def client(tmp_path):
    store = Store(tmp_path / "api.duckdb")
    now = int(time.time() * 1000)
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    spec = WindowSpec("tumbling", 300_000, 300_000)
    records = [
        ("grid.readings", grid_reading("FR", now)),
        ("grid.readings", grid_reading("DE", now, 400, renewable_pct=20)),
    ]
    for zone, carbon, ren in (("FR", 60.0, 80.0), ("DE", 400.0, 20.0)):
        agg = empty_window(zone, spec, now - now % 300_000).add(grid_reading(zone, now, carbon, renewable_pct=ren))
        records.append(("zone.windows", agg.to_record(Surplus())))
    records += [("node.registry", r) for r in fleet.registrations(now)]
    records += [("node.telemetry", t) for t in fleet.tick(now, 1.0)[0]]
    store.write(*rows_from_messages(messages(records)))
    producer = RecordingProducer()
    app = create_app(Settings(), store, producer)
    with TestClient(app) as c:
        c.producer = producer
        c.store = store
        yield c
    store.close()


def test_zones_latest_and_windows(client):
    zones = {z["zone"]: z for z in client.get("/api/v1/zones").json()}
    assert set(zones) == {"FR", "DE"}
    assert zones["FR"]["window_5m"]["carbon_mean"] == 60.0 and zones["FR"]["staleness_s"] < 60


def test_unknown_zone_history_says_which_exist(client):
    r = client.get("/api/v1/zones/XX/history")
    assert r.status_code == 404 and "known zones are" in r.json()["detail"]
    assert client.get("/api/v1/zones/FR/history").json()["windows"][0]["count"] == 1


def test_nodes_carry_current_scores_and_why_not(client):
    nodes = {n["node_id"]: n for n in client.get("/api/v1/nodes").json()}
    assert len(nodes) == 20
    assert nodes["dc-fr-h100-1"]["routable"] and nodes["dc-fr-h100-1"]["tier"] == 2
    assert not nodes["dc-it-a100-1"]["routable"] and "no grid data" in nodes["dc-it-a100-1"]["not_routable_because"]


def test_submit_publishes_a_valid_submission(client):
    body = {"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.5,
            "deadline": "2999-01-01T00:00:00Z", "green_only": True}  # fmt: skip
    r = client.post("/api/v1/workloads", json=body)
    assert r.status_code == 202
    topic, key, event = client.producer.sent[0]
    assert topic == "workload.events" and key == r.json()["workload_id"]
    assert event["type"] == "submitted" and event["request"]["green_only"] is True
    assert event["request"]["deadline_ms"] == 32472144000000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"vram_mb": 0}, "vram_mb"),
        ({"workload_type": "mining"}, "workload_type"),
        ({"image": None}, "image or command"),
        ({"deadline": "2020-01-01T00:00:00Z"}, "past"),
        ({"deadline": "2999-01-01T00:00:00"}, "offset"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_bodies_get_422_with_the_reason(client, change, field):
    body = {"name": "x", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0, **change}
    r = client.post("/api/v1/workloads", json=body)
    assert r.status_code == 422 and field in r.text


def test_unknown_workload_is_404(client):
    assert client.get("/api/v1/workloads/nope").status_code == 404


def test_openapi_is_served(client):
    assert "/api/v1/workloads" in client.get("/openapi.json").json()["paths"]


@pytest.fixture
def settled(client, tmp_path):
    """A settled workload in the store, signed with the platform key the API serves."""
    from sinks.rows import billing_row, receipt_row
    from toogreen.domain.accounting import Slot, accrue
    from toogreen.domain.settlement import settle
    from toogreen.signing import load_or_create_key, sign_receipt

    settings = Settings()
    intervals = accrue([], Slot("gm-fr-4090-1", "FR", 1.0, 1.0, 50.0, 0), 0, 3_600_000, 3.6e6, "c")
    intervals = accrue(intervals, Slot("dc-de-h100-1", "DE", 1.25, 1.0, 400.0, 0), 3_600_000, 7_200_000, 3.6e6, "c")
    receipt, billing = settle({"workload_id": "w9", "price_eur_per_gpu_hour": 1.0}, intervals, 7_200_000, settings)
    receipt = sign_receipt(receipt, load_or_create_key(settings.settlement.signing_key_path))
    return receipt, billing, receipt_row(receipt), billing_row(billing)


def test_receipts_round_trip_verify_and_tamper(client, settled):
    receipt, billing, rrow, brow = settled
    store = client.store
    store.write({"carbon_receipts": [rrow], "billing_records": [brow]}, [])
    served = client.get(f"/api/v1/receipts/{receipt['receipt_id']}").json()
    assert served == receipt
    assert client.post("/api/v1/receipts/verify", json=served).json() == {"valid": True, "failed_check": None}
    forged = {**served, "gco2_actual": served["gco2_actual"] / 2}
    assert client.post("/api/v1/receipts/verify", json=forged).json()["valid"] is False
    assert client.get("/api/v1/public-key").json()["hex"] == receipt["public_key"]
    assert client.get("/api/v1/receipts/nope").status_code == 404

    sustainability = client.get("/api/v1/sustainability").json()
    assert sustainability["totals"]["receipts"] == 1
    by_zone = {z["key"]: z for z in sustainability["by_zone"]}
    assert by_zone["FR"]["kwh"] == pytest.approx(1.0) and by_zone["DE"]["gco2_actual"] == pytest.approx(500.0)
    by_type = {t["key"]: t for t in sustainability["by_provider_type"]}
    assert set(by_type) == {"gamer", "datacenter"}
    bill = client.get("/api/v1/billing").json()
    assert bill["totals"]["charge"] == billing["charge"] and bill["records"][0]["workload_id"] == "w9"


def test_cli_verifies_with_only_the_public_key(settled, tmp_path):
    import json as _json

    from typer.testing import CliRunner

    from toogreen.app.cli import app as cli

    receipt = settled[0]
    good, bad, pub = tmp_path / "r.json", tmp_path / "bad.json", tmp_path / "pub.pem"
    good.write_text(_json.dumps(receipt))
    bad.write_text(_json.dumps({**receipt, "kwh": receipt["kwh"] + 1}))
    assert CliRunner().invoke(cli, ["receipt", "public-key"]).exit_code == 0
    pub.write_text(CliRunner().invoke(cli, ["receipt", "public-key"]).output)
    ok = CliRunner().invoke(cli, ["receipt", "verify", str(good), "--public-key", str(pub)])
    assert ok.exit_code == 0 and ok.output.startswith("valid")
    no = CliRunner().invoke(cli, ["receipt", "verify", str(bad), "--public-key", str(pub)])
    assert no.exit_code == 1 and "signature does not match" in no.output


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
