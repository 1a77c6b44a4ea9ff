"""The DuckDB store on a real file: idempotent batches, the lifecycle in workload rows, snapshots."""

import subprocess
import sys

import duckdb
import pytest

from connectors.fleet_sim import SimulatedFleet
from sinks.duckdb_store import Store
from sinks.kafka_sink import rows_from_messages
from tests.builders import grid_reading, messages
from toogreen.domain.windows import Surplus, WindowSpec, empty_window
from toogreen.submission import submission_event

T0 = 1_800_000_000_000
TUMBLING = WindowSpec("tumbling", 300_000, 300_000)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.duckdb")
    yield s
    s.close()


def counts(store):
    tables = ["grid_readings", "zone_windows", "nodes", "workloads", "workload_events", "routing_decisions",
              "dead_letters"]  # fmt: skip
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in tables}


def batch():
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    sub = submission_event({"name": "j", "workload_type": "training", "image": "i", "vram_mb": 1000,
                            "expected_hours": 1.0}, "w1", T0)  # fmt: skip
    routed = {**sub, "event_id": "d1:routed", "type": "routed", "node_id": "dc-fr-h100-1", "request": None,
              "decision_id": "d1"}  # fmt: skip
    started = {**routed, "event_id": "s1", "type": "started", "ts_ms": T0 + 5}
    bogus = {**routed, "event_id": "bogus", "type": "resumed", "ts_ms": T0 + 6}  # illegal in state running
    window = empty_window("FR", TUMBLING, T0).add(grid_reading(ts_ms=T0))
    return messages(
        [("grid.readings", grid_reading(ts_ms=T0)), ("grid.readings", grid_reading(ts_ms=T0 + 1)),
         ("grid.readings", b"junk"), ("grid.readings", grid_reading(zone="XX", ts_ms=T0)),
         ("zone.windows", window.to_record(Surplus())),
         *[("node.registry", r) for r in fleet.registrations(T0)],
         *[("node.telemetry", t) for t in fleet.tick(T0, 1.0)[0]],
         ("workload.events", sub), ("workload.events", routed), ("workload.events", started),
         ("workload.events", bogus)]
    )  # fmt: skip


def test_batch_lands_and_replay_changes_nothing(store):
    rows, events = rows_from_messages(batch())
    store.write(rows, events)
    first = counts(store)
    assert first == {"grid_readings": 2, "zone_windows": 1, "nodes": 20, "workloads": 1, "workload_events": 4,
                     "routing_decisions": 0, "dead_letters": 2}  # fmt: skip
    wl = store.query("SELECT status, node_id FROM workloads")[0]
    assert wl == {"status": "running", "node_id": "dc-fr-h100-1"}
    assert store.query("SELECT applied FROM workload_events WHERE event_id = 'bogus'")[0]["applied"] is False
    reasons = [r["reason"] for r in store.query("SELECT reason FROM dead_letters ORDER BY source_offset")]
    assert "single-object" in reasons[0] and "unknown zone 'XX'" in reasons[1]
    sums = store.query("SELECT sum(carbon_intensity_gco2_per_kwh) AS s FROM grid_readings")

    rows, events = rows_from_messages(batch())
    store.write(rows, events)
    assert counts(store) == first
    assert store.query("SELECT sum(carbon_intensity_gco2_per_kwh) AS s FROM grid_readings") == sums
    assert store.query("SELECT status FROM workloads")[0]["status"] == "running"


def test_an_older_version_of_a_window_never_overwrites_a_newer_one(store):
    one = empty_window("FR", TUMBLING, T0).add(grid_reading(ts_ms=T0, carbon=10))
    two = one.add(grid_reading(ts_ms=T0 + 1, carbon=30))
    for version in (two, one):
        rows, _ = rows_from_messages(messages([("zone.windows", version.to_record(Surplus()))]))
        store.write(rows, [])
    row = store.query("SELECT count, carbon_mean FROM zone_windows")[0]
    assert row == {"count": 2, "carbon_mean": 20.0}


def test_newer_telemetry_wins_and_older_is_ignored(store):
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    new = fleet.tick(T0 + 10_000, 1.0)[0][0]
    old = {**new, "ts_ms": T0, "power_w": 1.0}
    for sample in (new, old):
        rows, _ = rows_from_messages(messages([("node.telemetry", sample)]))
        store.write(rows, [])
    assert store.query("SELECT last_seen_ms, power_w FROM nodes")[0] == {
        "last_seen_ms": new["ts_ms"],
        "power_w": new["power_w"],
    }


def test_snapshot_opens_read_only_while_the_writer_holds_the_file(store, tmp_path):
    rows, events = rows_from_messages(batch())
    store.write(rows, events)
    snap = tmp_path / "snap.duckdb"
    store.publish_snapshot(snap)
    other_process = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(store.path)!r}, read_only=True)"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert other_process.returncode != 0 and "lock" in other_process.stderr.lower()  # why analysts need the snapshot
    con = duckdb.connect(str(snap), read_only=True)
    assert con.execute("SELECT count(*) FROM grid_readings").fetchone()[0] == 2
    store.write(*rows_from_messages(messages([("grid.readings", grid_reading(ts_ms=T0 + 99))])))
    store.publish_snapshot(snap)  # replaced atomically while the old copy is open
    assert con.execute("SELECT count(*) FROM grid_readings").fetchone()[0] == 2
    con.close()
    assert duckdb.connect(str(snap), read_only=True).execute("SELECT count(*) FROM grid_readings").fetchone()[0] == 3
