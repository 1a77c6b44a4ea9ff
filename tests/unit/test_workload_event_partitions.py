"""The DuckDB sink follows a workload's life in the order of the log. ``workload.events`` has one partition (the
placement log, docs/ownership.md), so the order of the log is the order the events were appended in, whichever
client and partitioner wrote them: nothing depends on a producer's partitioner."""

from __future__ import annotations

from sinks.duckdb_store import Store
from sinks.kafka_sink import rows_from_messages
from tests.builders import Msg
from toogreen.codec import encode
from toogreen.submission import submission_event
from toogreen.topics import WORKLOAD_EVENTS

T0 = 1_800_000_000_000
REQUEST = {"name": "j", "workload_type": "training", "image": "i", "vram_mb": 1000, "expected_hours": 1.0}


def test_workload_events_is_one_partition_whatever_the_cluster_default():
    assert WORKLOAD_EVENTS.partitions == 1


def test_in_log_order_the_sink_follows_the_workload_to_completed(tmp_path):
    sub = submission_event(REQUEST, "w1", T0)
    routed = {**sub, "event_id": "d1:routed", "type": "routed", "node_id": "n1", "request": None, "decision_id": "d1"}
    started = {**routed, "event_id": "s1", "type": "started", "ts_ms": T0 + 50, "decision_id": None}
    completed = {**started, "event_id": "c1", "type": "completed", "ts_ms": T0 + 90, "progress_pct": 100.0}
    log = [
        Msg("workload.events", encode("workload.events", e), i, 0)
        for i, e in enumerate([sub, routed, started, completed])
    ]
    store = Store(tmp_path / "t.duckdb")
    store.write(*rows_from_messages(log[:2]))
    store.write(*rows_from_messages(log[2:]))
    assert store.query("SELECT status FROM workloads")[0]["status"] == "completed"
    store.close()
