"""The query API over a real DuckDB file (no broker: submissions go to a recording producer that encodes and
decodes each record with the topic's Avro schema, as the real one would)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from connectors.fleet_sim import SimulatedFleet
from sinks.duckdb_store import Store
from sinks.kafka_sink import rows_from_messages
from tests.builders import grid_reading, messages
from toogreen.codec import decode, encode
from toogreen.domain.windows import Surplus, WindowSpec, empty_window
from toogreen.settings import Settings


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict]] = []

    def send(self, topic: str, key: str, record: dict) -> None:
        self.sent.append((topic, key, decode(topic, encode(topic, record))))

    def flush(self, timeout_s: float = 0, require_delivered: bool = False) -> None:
        return None


def filled_store(path) -> Store:
    """A DuckDB file with two zones' readings and windows and the simulated fleet registered and reporting."""
    store = Store(path)
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
    return store


@pytest.fixture
def store(tmp_path):
    store = filled_store(tmp_path / "api.duckdb")
    yield store
    store.close()


ADMIN = {"Authorization": f"Bearer {Settings().api.admin_token}"}


@pytest.fixture
def app(store):
    app = create_app(Settings(), store, RecordingProducer())
    app.state.test_store = store
    return app


@pytest.fixture
def client(app):
    """A client signed in as admin (the settings' admin token)."""
    with TestClient(app, headers=ADMIN) as c:
        c.producer = app.state.producer
        c.store = app.state.store
        yield c


@pytest.fixture
def anon(app):
    """A client without a token."""
    with TestClient(app) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def settled(client):
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
    client.store.write({"carbon_receipts": [receipt_row(receipt)], "billing_records": [billing_row(billing)]}, [])
    return receipt, billing


@pytest.fixture
def api_url(app):
    """The app served by a real uvicorn on a free port (in a thread)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
