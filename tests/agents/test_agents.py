"""The Faust agents under ``agent.test_context()``: no broker, real tables, a recording emitter."""

from __future__ import annotations

import asyncio

import pytest

import streams.agents as agents
from connectors.fleet_sim import FLEET
from streams.app import (
    INGEST_ZONE_VIEWS_TOPIC,
    ZONE_VIEWS_TOPIC,
    ingest_zone_view_table,
    node_reservation_table,
    node_running_table,
    workload_accrual_table,
    workload_state_table,
    zone_meta_table,
    zone_view_table,
    zone_window_table,
)
from streams.emit import RecordingEmitter
from tests.agents.harness import TABLES, clear_tables, deliver_internal, feed_fleet
from tests.builders import grid_reading, now_ms, window_aligned_now_ms
from toogreen.codec import encode
from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.records import Hold
from toogreen.submission import submission_event


@pytest.fixture(autouse=True)
def recorder(monkeypatch):
    """Tables are module globals: start each test from empty ones and record what the agents send."""
    clear_tables(TABLES)
    rec = RecordingEmitter()
    monkeypatch.setattr(agents, "emitter", rec)
    return rec


async def test_zone_windows_emit_every_window_and_the_routing_view(recorder):
    ts = window_aligned_now_ms()
    async with agents.zone_windows.test_context() as agent:
        await agent.put(encode("grid.readings", grid_reading("FR", ts, 50.0)), key=b"FR")
        await agent.put(encode("grid.readings", grid_reading("FR", ts + 1000, 70.0)), key=b"FR")
    windows = recorder.on("zone.windows")
    assert len(windows) == 26  # (1 tumbling + 12 hopping) per reading
    latest_tumbling = [w for w in windows if w["kind"] == "tumbling"][-1]
    assert latest_tumbling["count"] == 2 and latest_tumbling["carbon_mean"] == 60.0
    assert "FR" not in zone_view_table  # the placement owner's table: the view goes there on its own topic
    # one view per run (here each reading is a run of its own) to the placement owner, and one to each ingest
    # partition (the carbon of accrued energy)
    to_owner = [k for t, k, _ in recorder.internal if t == ZONE_VIEWS_TOPIC.get_topic_name()]
    ingest_topic = INGEST_ZONE_VIEWS_TOPIC.get_topic_name()
    to_ingest = [(k, part) for t, k, part in recorder.internal_partitions if t == ingest_topic]
    assert to_owner == ["FR", "FR"]
    assert sorted(to_ingest) == sorted([("FR", part) for part in range(INGEST_ZONE_VIEWS_TOPIC.partitions)] * 2)
    assert await deliver_internal(recorder) == 2 + 2 * INGEST_ZONE_VIEWS_TOPIC.partitions
    assert ingest_zone_view_table["FR"] == zone_view_table["FR"]
    assert zone_view_table["FR"].carbon_gco2_per_kwh == 60.0


async def test_a_redelivered_reading_is_counted_once_and_its_windows_are_published_again(recorder, offsets_as_a_log):
    """A worker killed before its offsets were committed: the next owner of the partition gets the readings again.
    The window and the zone's bookkeeping carry the last reading they took in, so the count stays exact, and the
    windows go out again (the killed worker's last records may never have left)."""
    ts = window_aligned_now_ms()
    async with agents.zone_windows.test_context() as agent:
        for i in range(3):
            await agent.put(encode("grid.readings", grid_reading("FR", ts + i * 1000, 50.0 + i)), key=b"FR")
    (topic, partition), end = next((tp, n) for tp, n in offsets_as_a_log.items() if tp[0].endswith("grid.readings"))
    offsets_as_a_log[(topic, partition)] = end - 2  # the last two readings are delivered again
    recorder.sent.clear()
    async with agents.zone_windows.test_context() as agent:
        for i in (1, 2):
            await agent.put(encode("grid.readings", grid_reading("FR", ts + i * 1000, 50.0 + i)), key=b"FR")
        await agent.put(encode("grid.readings", grid_reading("FR", ts + 3000, 53.0)), key=b"FR")  # a new one
    tumbling = [w for w in recorder.on("zone.windows") if w["kind"] == "tumbling"]
    assert [w["count"] for w in tumbling] == [3, 3, 4]  # published again as they were, then the new reading
    assert len(recorder.on("zone.windows")) == 3 * 13
    stored = zone_window_table[f"FR|tumbling|{ts - ts % (agents.settings.windows.tumbling_s * 1000)}"]
    assert stored.value.count == 4 and stored.applied == {f"{topic}:{partition}": end}
    assert zone_meta_table["FR"].value.watermark_ms == ts + 3000 and zone_meta_table["FR"].value.late_count == 0


async def test_a_run_of_readings_sends_each_window_and_each_changelog_key_once(recorder, monkeypatch):
    """With a coalescing delay, back-to-back readings are one run: the state is exact, and what it sends is the
    latest record per window and one changelog record per table key, partitioned like the event that wrote it."""
    monkeypatch.setattr(agents.settings.worker, "coalesce_max_delay_ms", 200.0)
    sent: list[tuple[str, object, int]] = []
    for table in (zone_window_table, zone_meta_table, zone_view_table):
        monkeypatch.setattr(
            table, "send_changelog", lambda p, k, v, *a, t=table, **kw: sent.append((t.name, k, p)), raising=False
        )
    ts = window_aligned_now_ms()
    async with agents.zone_windows.test_context() as agent:
        for i in range(5):
            await agent.put(encode("grid.readings", grid_reading("FR", ts + i, 50.0 + 10 * i)), key=b"FR", partition=3)
        assert recorder.on("zone.windows") == []  # the run is still open
        await asyncio.sleep(0.4)  # ... until its delay has passed
    windows = recorder.on("zone.windows")
    assert len(windows) == 13 and len({(w["kind"], w["window_start_ms"]) for w in windows}) == 13
    tumbling = next(w for w in windows if w["kind"] == "tumbling")
    assert tumbling["count"] == 5 and tumbling["carbon_mean"] == 70.0
    assert sorted(name for name, _k, _p in sent) == ["zone-meta", "zone-window-aggregates"]
    assert {p for _n, _k, p in sent} == {3}
    # the zone's newest view, once for the run, to the placement owner (and a copy to each ingest partition)
    assert [t for t, _k, _v in recorder.internal].count(ZONE_VIEWS_TOPIC.get_topic_name()) == 1
    assert len(recorder.internal) == 1 + INGEST_ZONE_VIEWS_TOPIC.partitions
    await deliver_internal(recorder)
    assert zone_view_table["FR"].carbon_gco2_per_kwh == 70.0


async def test_bad_grid_records_are_dead_lettered_and_the_stream_goes_on(recorder):
    ts = now_ms()
    async with agents.zone_windows.test_context() as agent:
        await agent.put(b"\x00garbage", key=b"FR")
        await agent.put(encode("grid.readings", grid_reading("XX", ts)), key=b"XX")
        await agent.put(encode("grid.readings", grid_reading("FR", ts, float("nan"))), key=b"FR")
        await agent.put(encode("grid.readings", grid_reading("DE", ts)), key=b"DE")
    reasons = [d["reason"] for d in recorder.dead]
    assert len(reasons) == 3
    assert "single-object" in reasons[0] and "unknown zone 'XX'" in reasons[1] and "finite" in reasons[2]
    assert {d["source_topic"] for d in recorder.dead} == {"grid.readings"}
    first = recorder.dead[0]["source_offset"]  # offsets grow across tests, as in a log (conftest.py)
    assert [d["source_offset"] for d in recorder.dead] == [first, first + 1, first + 2]
    assert recorder.dead[0]["raw"] == b"\x00garbage"
    await deliver_internal(recorder)
    assert "DE" in zone_view_table


async def test_too_late_reading_is_dead_lettered_with_the_reason(recorder):
    ts = now_ms()
    async with agents.zone_windows.test_context() as agent:
        await agent.put(encode("grid.readings", grid_reading("FR", ts)), key=b"FR")
        await agent.put(encode("grid.readings", grid_reading("FR", ts - 3_600_000)), key=b"FR")
    assert len(recorder.dead) == 1 and "too late" in recorder.dead[0]["reason"]
    assert zone_meta_table["FR"].value.too_late_count == 1


async def test_a_decision_over_a_larger_fleet_reports_the_best_and_counts_the_rest(recorder, monkeypatch):
    monkeypatch.setattr(agents.settings.scoring, "decision_alternatives", 3)
    ts = now_ms()
    await feed_fleet(ts)
    request = {"name": "j", "workload_type": "training", "image": "img", "vram_mb": 30_000, "expected_hours": 2.0}
    async with agents.workloads.test_context() as agent:
        await agent.put(encode("workload.events", submission_event(request, "w1", ts)), key=b"w1")
    (decision,) = recorder.on("routing.decisions")
    shown = decision["alternatives"]
    eligible = [a for a in shown if a["eligible"]]
    assert len(eligible) == 3 and eligible[0]["node_id"] == decision["chosen_node_id"]
    assert [(a["tier"], a["score"]) for a in eligible] == sorted((a["tier"], a["score"]) for a in eligible)
    assert len(shown) - len(eligible) == min(3, 20 - decision["nodes_eligible"])
    assert decision["nodes_considered"] == 20
    assert decision["nodes_eligible"] + sum(e["count"] for e in decision["exclusions"]) == 20
    assert any(e["reason"] == "not enough free VRAM" for e in decision["exclusions"])  # the RTX cards


async def test_router_routes_a_submission_and_reserves_the_vram(recorder):
    ts = now_ms()
    await feed_fleet(ts)
    nodes, zones = agents.routing_inputs()
    assert len(nodes) == 20 and len(zones) == 11
    request = {
        "name": "j",
        "workload_type": "training",
        "image": "img",
        "vram_mb": 70_000,
        "expected_hours": 2.0,
        "green_only": True,
    }
    async with agents.workloads.test_context() as agent:
        await agent.put(encode("workload.events", submission_event(request, "w1", ts)), key=b"w1")
        await agent.put(encode("workload.events", submission_event(request, "w2", ts)), key=b"w2")
    decisions = recorder.on("routing.decisions")
    assert [d["type"] for d in decisions] == ["initial", "initial"]
    assert decisions[0]["tier"] == 1  # green-only work: recyclers first
    assert len(decisions[0]["alternatives"]) == 20
    # the first workload's 70 GB are reserved: the second cannot share that GPU
    assert decisions[0]["chosen_node_id"] != decisions[1]["chosen_node_id"]
    commands = recorder.on("node.commands")
    assert [c["action"] for c in commands] == ["start", "start"]
    held = node_reservation_table[decisions[0]["chosen_node_id"]]
    assert held == {"w1": Hold(vram_mb=70_000, expected_end_ms=held["w1"].expected_end_ms)}
    assert held["w1"].expected_end_ms is not None  # held until it is expected to be done
    assert workload_state_table["w1"].state is WorkloadState.ROUTED


async def test_router_dead_letters_illegal_transitions_and_releases_on_completion(recorder):
    ts = now_ms()
    await feed_fleet(ts)
    request = {"name": "j", "workload_type": "training", "image": "img", "vram_mb": 1000, "expected_hours": 1.0}
    async with agents.workloads.test_context() as agent:
        await agent.put(encode("workload.events", submission_event(request, "w1", ts)), key=b"w1")
        node_id = recorder.on("node.commands")[0]["node_id"]
        base = {"workload_id": "w1", "ts_ms": ts, "node_id": node_id, "progress_pct": None, "checkpoint_uri": None,
                "decision_id": None, "reason": None, "request": None}  # fmt: skip
        await agent.put(encode("workload.events", {**base, "event_id": "e1", "type": "completed"}), key=b"w1")
        await agent.put(encode("workload.events", {**base, "event_id": "e2", "type": "started"}), key=b"w1")
        await agent.put(encode("workload.events", {**base, "event_id": "e2", "type": "started"}), key=b"w1")
        await agent.put(encode("workload.events", {**base, "event_id": "e3", "type": "completed"}), key=b"w1")
    assert len(recorder.dead) == 1 and "illegal in state 'routed'" in recorder.dead[0]["reason"]
    assert workload_state_table["w1"].state is WorkloadState.COMPLETED
    assert node_reservation_table[node_id] == {}


async def test_a_redelivered_submission_sends_the_same_decision_command_and_event_again(
    recorder, offsets_as_a_log, monkeypatch
):
    """The owner was killed after the submission's state went out but maybe before its decision and command did:
    the next owner gets the submission again; the router knows it (a no-op), and the checkpoint's outbox sends what
    it sent the first time, the same records with the same ids."""
    ts = now_ms()
    await feed_fleet(ts)

    async def never_acked(pending, timeout_s):  # the brokers never ack what it sends: the outbox keeps it
        return [], len(pending)

    acked = recorder.delivered
    monkeypatch.setattr(recorder, "delivered", never_acked)
    request = {"name": "j", "workload_type": "training", "image": "img", "vram_mb": 1000, "expected_hours": 1.0}
    submission = encode("workload.events", submission_event(request, "w1", ts))
    async with agents.workloads.test_context() as agent:
        await agent.put(submission, key=b"w1")
    first = [(t, k, r) for t, k, r in recorder.sent if t in ("routing.decisions", "node.commands", "workload.events")]
    assert {t for t, _k, _r in first} == {"routing.decisions", "node.commands", "workload.events"}
    (topic, partition), end = next((tp, n) for tp, n in offsets_as_a_log.items() if tp[0].endswith("workload.events"))
    offsets_as_a_log[(topic, partition)] = end - 1  # delivered again
    recorder.sent.clear()
    async with agents.workloads.test_context() as agent:
        await agent.put(submission, key=b"w1")
    assert recorder.sent == first  # the same records, ids and all
    monkeypatch.setattr(recorder, "delivered", acked)  # delivered this time: the outbox forgets them ...
    offsets_as_a_log[(topic, partition)] = end - 1
    async with agents.workloads.test_context() as agent:
        await agent.put(submission, key=b"w1")
        await asyncio.sleep(0.01)
    recorder.sent.clear()
    offsets_as_a_log[(topic, partition)] = end - 1
    async with agents.workloads.test_context() as agent:
        await agent.put(submission, key=b"w1")
    assert recorder.sent == []  # ... and a third delivery sends nothing (no start after the workload may have ended)
    held = sum(h.vram_mb for holds in node_reservation_table.values() for h in holds.values())
    assert held == 1000  # reserved once


async def test_a_workload_on_the_real_h100_trace_is_settled_with_a_signed_receipt(recorder, data_dir):
    """The trace replayed as one node's telemetry while a workload runs there: the receipt's kWh matches the
    trace's energy counter (× PUE) within 1 %, and a billing record follows."""
    from connectors.nvml import read_trace, replay
    from toogreen.signing import verify_receipt

    ts = now_ms()
    await feed_fleet(ts)
    request = {
        "name": "j",
        "workload_type": "training",
        "image": "img",
        "vram_mb": 70_000,
        "expected_hours": 1.0,
        "green_only": True,
    }
    async with agents.workloads.test_context() as agent:
        await agent.put(encode("workload.events", submission_event(request, "w1", ts)), key=b"w1")
        node_id = recorder.on("node.commands")[0]["node_id"]
        _, _, node_type, _, _, pue, _, declared = next(row for row in FLEET if row[0] == node_id)
        assert node_type == "recycler"
        samples = list(replay(read_trace(data_dir / "nvml" / "h100_trace.jsonl"), node_id, 1.0, ts + 1000))
        base = {"workload_id": "w1", "node_id": node_id, "progress_pct": None, "checkpoint_uri": None,
                "decision_id": None, "reason": None, "request": None}  # fmt: skip
        start = {**base, "event_id": "s", "type": "started", "ts_ms": samples[0]["ts_ms"]}
        await agent.put(encode("workload.events", start), key=b"w1")
    await deliver_internal(recorder)  # its share reaches the node's partition
    async with agents.node_telemetry.test_context() as agent:
        for sample in samples:
            await agent.put(encode("node.telemetry", sample), key=node_id.encode())
    async with agents.workloads.test_context() as agent:
        done = {**base, "event_id": "c", "type": "completed", "ts_ms": samples[-1]["ts_ms"], "progress_pct": 100.0}
        await agent.put(encode("workload.events", done), key=b"w1")
    await deliver_internal(recorder)
    assert recorder.on("settlement.receipts") == []  # until the node hands over what the workload drew there
    async with agents.node_telemetry.test_context() as agent:
        after = {**samples[-1], "ts_ms": samples[-1]["ts_ms"] + 1000}
        await agent.put(encode("node.telemetry", after), key=node_id.encode())
    await deliver_internal(recorder)

    receipt = recorder.on("settlement.receipts")[0]
    counter_kwh = (samples[-1]["energy_j"] - samples[0]["energy_j"]) / 3.6e6 * pue
    assert receipt["kwh"] == pytest.approx(counter_kwh, rel=0.01)
    assert {i["node_id"] for i in receipt["intervals"]} == {node_id}
    assert receipt["gco2_market_based"] == pytest.approx(receipt["kwh"] * declared, rel=1e-4)
    assert verify_receipt(receipt, agents.signing_key().public_key()).valid
    billings = recorder.on("billing.records")  # an interim record per metering interval closed, then the final one
    billing = billings[-1]
    assert billing["billing_id"] == "bill-w1-final" and billing["metering_ids"][-1] == "bill-w1-final"
    assert sum(b["kwh"] for b in billings) == pytest.approx(receipt["kwh"], abs=1e-6 * len(billings))  # rounded each
    assert billing["fee"] == pytest.approx(0.15 * billing["charge"], abs=0.01)
    assert "w1" not in workload_accrual_table and node_running_table[node_id] == {}


def test_the_placement_owner_s_timers_wait_until_its_tables_are_recovered(monkeypatch):
    """Assigned the placement partition but still reading its tables back (Faust's rebalance runs until recovery is
    done): not the owner yet for the timers, whose lost-node check would judge nodes the half-read table lacks."""
    from faust.types import TP

    monkeypatch.setattr(agents.app.assignor, "assigned_actives", lambda: {TP("workload.events", 0)})
    monkeypatch.setattr(agents.app, "rebalancing", True)
    assert not agents.owns_placement()
    monkeypatch.setattr(agents.app, "rebalancing", False)
    assert agents.owns_placement()
    monkeypatch.setattr(agents.app.assignor, "assigned_actives", lambda: {TP("workload.events", 1)})
    assert not agents.owns_placement()
