"""The whole pipeline on the embedded broker: submit through the API, see the decision in the API and DuckDB;
bad input is dead-lettered and the pipeline goes on; the sink's replay of the log changes nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.integration.support import eventually, snapshot_rows
from toogreen.app.demo import Stack
from toogreen.codec import decode
from toogreen.kafka.producer import RecordProducer
from toogreen.settings import Settings

pytestmark = pytest.mark.integration
# The API asks for a bearer token: the tests call it as the settings' admin (scoping has its own tests).
API = httpx.Client(headers={"Authorization": f"Bearer {Settings().api.admin_token}"})


def test_zones_have_windowed_values(system: Stack):
    zones = eventually(
        lambda: (z := API.get(f"{system.api_url()}/api/v1/zones").json()) and len(z) == 11 and z, what="11 zones"
    )
    assert all(z["window_5m"]["count"] >= 1 and z["window_1h"] is not None for z in zones)
    assert all(z["latest"]["source"] == "synthetic" for z in zones)


def test_submitted_workload_is_routed_and_seen_in_api_and_duckdb(system: Stack):
    api = system.api_url()
    body = {"name": "it-job", "workload_type": "fine_tune", "image": "ghcr.io/x/y:1", "vram_mb": 20_000,
            "expected_hours": 0.06}  # fmt: skip
    response = API.post(f"{api}/api/v1/workloads", json=body, timeout=15)
    assert response.status_code == 202, response.text
    wid = response.json()["workload_id"]

    def routed() -> dict | None:
        r = API.get(f"{api}/api/v1/workloads/{wid}")
        return r.json() if r.status_code == 200 and r.json()["decisions"] else None

    workload = eventually(routed, what="routing decision in the API")
    decision = workload["decisions"][0]
    assert decision["type"] == "initial" and decision["chosen_node_id"]
    assert len(decision["alternatives"]) == 20  # the demo fleet is small enough to be reported whole
    assert any(a["eligible"] for a in decision["alternatives"]) and decision["grid_windows"]
    assert decision["nodes_considered"] == 20
    assert decision["nodes_eligible"] + sum(e["count"] for e in decision["exclusions"]) == 20

    rows = eventually(
        lambda: snapshot_rows(
            system, "SELECT chosen_node_id, type FROM routing_decisions WHERE workload_id = ?", [wid]
        ),
        what="routing decision in DuckDB",
    )
    assert rows == [(decision["chosen_node_id"], "initial")]

    # 0.06 h at the fleet's 1 simulated hour per minute finishes in about 4 s: the node is freed
    done = eventually(
        lambda: (w := API.get(f"{api}/api/v1/workloads/{wid}").json())["status"] == "completed" and w,
        what="completion",
    )
    assert [e["type"] for e in done["events"]][:3] == ["submitted", "routed", "started"]
    nodes = {n["node_id"]: n for n in API.get(f"{api}/api/v1/nodes").json()}
    assert nodes[decision["chosen_node_id"]]["vram_reserved_mb"] == 0

    # settled: a signed receipt for the energy it drew, verifiable through the API, and a bill
    settled = eventually(
        lambda: (w := API.get(f"{api}/api/v1/workloads/{wid}").json())["receipt_id"] and w["billing"] and w,
        what="receipt and billing",
    )
    receipt = API.get(f"{api}/api/v1/receipts/{settled['receipt_id']}").json()
    assert receipt["kwh"] > 0 and receipt["intervals"][0]["node_id"] == decision["chosen_node_id"]
    assert API.post(f"{api}/api/v1/receipts/verify", json=receipt).json()["valid"] is True
    bill = settled["billing"][0]
    assert bill["charge"] == pytest.approx(bill["fee"] + bill["payout"], abs=0.011)


def test_bad_bodies_get_422_and_oversized_ones_413(system: Stack):
    api = system.api_url()
    bad = API.post(f"{api}/api/v1/workloads", json={"name": "x", "workload_type": "training", "vram_mb": -1})
    assert bad.status_code == 422 and "vram_mb" in bad.text
    huge = API.post(f"{api}/api/v1/workloads", content=b"{" + b" " * 100_000 + b"}",
                      headers={"content-type": "application/json"})  # fmt: skip
    assert huge.status_code == 413


def test_malformed_grid_record_is_dead_lettered_and_the_pipeline_goes_on(system: Stack):
    api = system.api_url()
    producer = RecordProducer(system.settings.bootstrap)
    producer.send_raw("grid.readings", b"FR", b"this is not avro")
    producer.flush()

    letters = eventually(
        lambda: [d for d in API.get(f"{api}/api/v1/dead-letters").json() if d["source_topic"] == "grid.readings"],
        what="dead letter in DuckDB",
    )
    assert "single-object" in letters[0]["reason"]

    # the worker dead-lettered it too, with the same source coordinates (so DuckDB counts it once)
    consumer = Consumer(
        {"bootstrap.servers": system.settings.bootstrap, "group.id": "it-dlq", "enable.auto.commit": False}
    )
    meta = consumer.list_topics("dead.letters", timeout=10)
    consumer.assign(
        [TopicPartition("dead.letters", p, OFFSET_BEGINNING) for p in meta.topics["dead.letters"].partitions]
    )
    found = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not found:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            record = decode("dead.letters", msg.value())
            if record["stage"] == "zone_windows" and record["raw"] == b"this is not avro":
                found.append(record)
    consumer.close()
    assert found and found[0]["source_partition"] == letters[0]["source_partition"]
    assert found[0]["source_offset"] == letters[0]["source_offset"]

    before = API.get(f"{api}/healthz").json()["grid_readings"]
    eventually(lambda: API.get(f"{api}/healthz").json()["grid_readings"] > before, what="readings after bad input")


def _replay(settings: Settings, store: Any, group: str, upto: dict[tuple[str, int], int] | None) -> dict:
    """Read every sink topic from the start up to ``upto`` (default: the end of the log now) into ``store``."""
    from sinks.kafka_sink import DuckDBSink

    settings.storage.sink_group_id = group
    sink = DuckDBSink(settings, store)
    consumer = sink._consumer()
    if upto is None:
        upto = {}
        for tp in consumer.assignment():
            upto[(tp.topic, tp.partition)] = consumer.get_watermark_offsets(tp, timeout=10)[1]
    done = {key for key, end in upto.items() if end == 0}
    deadline = time.monotonic() + 60
    while len(done) < len(upto) and time.monotonic() < deadline:
        batch = []
        for m in consumer.consume(5000, 0.5):
            key = (m.topic(), m.partition())
            if m.error() is None and m.offset() < upto[key]:
                batch.append(m)
                if m.offset() == upto[key] - 1:
                    done.add(key)
        if batch:
            sink.write_and_commit(consumer, batch)
    consumer.close()
    assert len(done) == len(upto), "replay did not reach the end of the log"
    return upto


def test_replaying_the_log_into_duckdb_changes_nothing(system: Stack, tmp_path):
    from sinks.duckdb_store import Store

    settings = system.settings.model_copy(deep=True)
    store = Store(tmp_path / "replay.duckdb")
    tables = ["grid_readings", "zone_windows", "nodes", "workloads", "workload_events", "routing_decisions",
              "dead_letters"]  # fmt: skip

    def state() -> dict:
        out = {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in tables}
        out["carbon_sum"] = store.query("SELECT sum(carbon_intensity_gco2_per_kwh) AS s FROM grid_readings")[0]["s"]
        out["statuses"] = store.query("SELECT status, count(*) AS n FROM workloads GROUP BY ALL ORDER BY ALL")
        return out

    upto = _replay(settings, store, "replay-a", None)
    first = state()
    assert first["grid_readings"] > 0 and first["routing_decisions"] > 0 and first["dead_letters"] > 0
    _replay(settings, store, "replay-b", upto)  # a second consumer group reads the same log again
    assert state() == first
    store.close()


def test_an_admin_surplus_event_shows_in_zones_through_the_pipeline(system: Stack):
    api = system.api_url()
    token = system.settings.api.admin_token
    r = API.post(f"{api}/api/v1/admin/surplus-events", json={"zone": "PT", "curtailment_mw": 3000, "minutes": 0.2},
                   headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 202, r.text

    def pt_in_surplus() -> dict | None:
        pt = next(z for z in API.get(f"{api}/api/v1/zones").json() if z["zone"] == "PT")
        return pt if pt["surplus"] and "curtailment 3000 MW" in (pt["surplus_reason"] or "") else None

    pt = eventually(pt_in_surplus, what="PT in surplus")
    assert pt["window_5m"]["curtailment_max_mw"] == 3000.0
    rows = eventually(
        lambda: (
            snapshot_rows(system, "SELECT count(*) FROM grid_readings WHERE zone = 'PT' AND source = 'admin'")[0][0]
            >= 1
        ),
        what="admin readings in DuckDB",
    )
    assert rows
