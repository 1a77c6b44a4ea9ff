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
