"""Log lifetimes in the DuckDB store: a new broker's log ends what was active in the old one as ``lost``, dead
letters are keyed by lifetime, bounded in size, and an old file's dead letters move to the new key."""

import hashlib

import duckdb
import pytest

from sinks.duckdb_store import Store
from sinks.kafka_sink import rows_from_messages
from tests.builders import NOW_MS as T0
from tests.builders import Msg, messages
from toogreen.codec import DEAD_LETTER_RAW_MAX_BYTES, dead_letter, decode, encode
from toogreen.domain.router import workload_event
from toogreen.submission import submission_event

REQUEST = {"name": "job", "workload_type": "inference", "image": "x/y:1", "vram_mb": 8000, "expected_hours": 1.0}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.duckdb")
    yield s
    s.close()


def running_workload(store: Store, workload_id: str, lifetime: str, offset: int = 0) -> None:
    events = [
        submission_event(REQUEST, workload_id, T0),
        workload_event(workload_id, T0 + 1, "routed", f"{workload_id}:r", node_id="n1", decision_id="d1"),
        workload_event(workload_id, T0 + 2, "started", f"{workload_id}:s", node_id="n1"),
    ]
    msgs = [Msg("workload.events", encode("workload.events", e), offset + i) for i, e in enumerate(events)]
    store.write(*rows_from_messages(msgs, lifetime))


def statuses(store: Store) -> dict[str, tuple[str, str | None]]:
    return {r["workload_id"]: (r["status"], r["reason"]) for r in store.query("SELECT * FROM workloads")}


def test_a_new_lifetime_ends_the_active_workloads_of_the_old_one_as_lost(store):
    assert store.begin_lifetime("L1", T0) == 0
    running_workload(store, "w-running", "L1")
    store.write(*rows_from_messages(
        [Msg("workload.events", encode("workload.events", submission_event(REQUEST, "w-done", T0)), 10),
         Msg("workload.events", encode("workload.events", workload_event("w-done", T0 + 1, "cancelled", "c")), 11)],
        "L1",
    ))  # fmt: skip
    assert store.begin_lifetime("L1", T0 + 5) is None  # the sink reconnected to the same log: nothing changes
    assert statuses(store)["w-running"][0] == "running"

    assert store.begin_lifetime("L2", T0 + 10) == 1
    after = statuses(store)
    assert after["w-done"][0] == "cancelled"
    status, reason = after["w-running"]
    assert status == "lost" and "L1" in reason and "L2" in reason and "was running" in reason
    lost_event = store.query("SELECT * FROM workload_events WHERE type = 'lost'")
    assert [(e["workload_id"], e["lifetime_id"], e["applied"]) for e in lost_event] == [("w-running", "L2", True)]
    # nothing from the old lifetime holds capacity: no workload is active any more
    assert store.query("SELECT count(*) AS n FROM workloads WHERE status IN ('routed', 'running')")[0]["n"] == 0
    # an event of the lost lifetime arriving late changes nothing: lost is terminal
    late = workload_event("w-running", T0 + 20, "completed", "w-running:c", node_id="n1", progress_pct=100.0)
    store.write(*rows_from_messages([Msg("workload.events", encode("workload.events", late), 0)], "L2"))
    assert statuses(store)["w-running"][0] == "lost"
    assert store.begin_lifetime("L3", T0 + 30) == 0


def test_workload_rows_say_which_lifetime_they_were_last_changed_in(store):
    store.begin_lifetime("L1", T0)
    running_workload(store, "w", "L1")
    assert store.query("SELECT lifetime_id FROM workloads")[0]["lifetime_id"] == "L1"


def test_dead_letters_at_the_same_offset_in_two_lifetimes_are_two_rows(store):
    bad = [("grid.readings", b"not avro")]
    store.write(*rows_from_messages(messages(bad), "L1"))
    store.write(*rows_from_messages(messages(bad), "L1"))  # read again: the same row
    store.write(*rows_from_messages(messages(bad), "L2"))  # offset 0 again, in a new log
    rows = store.query("SELECT lifetime_id, source_offset FROM dead_letters ORDER BY lifetime_id")
    assert [(r["lifetime_id"], r["source_offset"]) for r in rows] == [("L1", 0), ("L2", 0)]


def test_a_huge_record_is_dead_lettered_by_prefix_size_and_hash():
    raw = b"\x00" * 5_000_000
    record = dead_letter("grid.readings", 1, 7, b"k" * 10_000, raw, "zone_windows", "x" * 5000)
    wire = encode("dead.letters", record)
    assert len(wire) < 3 * DEAD_LETTER_RAW_MAX_BYTES  # small enough for any broker's message limit
    back = decode("dead.letters", wire)
    assert len(back["raw"]) == DEAD_LETTER_RAW_MAX_BYTES and back["raw_size_bytes"] == 5_000_000
    assert back["raw_sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(back["reason"]) == 2000


def test_a_file_from_before_lifetimes_keeps_its_dead_letters_under_a_lifetime_key(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE dead_letters (source_topic VARCHAR NOT NULL, source_partition INTEGER NOT NULL, "
        "source_offset BIGINT NOT NULL, ts_ms BIGINT, stage VARCHAR, reason VARCHAR, key BLOB, raw BLOB, "
        "PRIMARY KEY (source_topic, source_partition, source_offset))"
    )
    con.execute("INSERT INTO dead_letters VALUES ('grid.readings', 0, 3, 1, 'sink', 'bad', NULL, 'x')")
    con.close()
    store = Store(path)
    try:
        rows = store.query("SELECT lifetime_id, source_offset, reason FROM dead_letters")
        assert rows == [{"lifetime_id": "before-lifetimes", "source_offset": 3, "reason": "bad"}]
        store.write(*rows_from_messages(messages([("grid.readings", b"bad")]), "L1"))
        assert store.query("SELECT count(*) AS n FROM dead_letters")[0]["n"] == 2
    finally:
        store.close()
