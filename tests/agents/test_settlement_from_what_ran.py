"""Settlement from what ran, through the real agents: while a workload runs, the node's partition sends a billing
record per metering interval closed; its energy runs up to its stop (the node's sample at exit is its own up to
then) and is handed over at that sample; the final record bills the rest, and all of them add up to the receipt."""

from __future__ import annotations

import asyncio
import json

import pytest

import streams.agents as agents
from connectors.nvml import read_trace, replay
from streams import faust_private
from streams.app import node_running_table, workload_accrual_table
from streams.emit import RecordingEmitter
from tests.agents.harness import TABLES, clear_tables, deliver_internal, feed_fleet
from tests.builders import now_ms
from toogreen.codec import encode
from toogreen.domain.settlement import metering_boundaries
from toogreen.submission import submission_event


@pytest.fixture(autouse=True)
def recorder(monkeypatch):
    clear_tables(TABLES)
    rec = RecordingEmitter()
    monkeypatch.setattr(agents, "emitter", rec)
    monkeypatch.setattr(agents.settings.settlement, "metering_interval_s", 10.0)
    return rec


async def placed(recorder: RecordingEmitter) -> tuple[int, str]:
    """The simulated fleet fed, a 70 GB workload w1 submitted now: when, and the node it was placed on."""
    ts = now_ms()
    await feed_fleet(ts)
    request = {"name": "j", "workload_type": "training", "image": "img", "vram_mb": 70_000, "expected_hours": 1.0}
    async with agents.workloads.test_context() as agent:
        await agent.put(encode("workload.events", submission_event(request, "w1", ts)), key=b"w1")
    return ts, recorder.on("node.commands")[0]["node_id"]


async def ran_then_stopped(recorder: RecordingEmitter, data_dir, samples_taken: int, running: int) -> tuple[str, list]:
    """w1 placed and started, the node's first ``running`` samples (one every 8 of the real H100 trace, of
    ``samples_taken``) applied, then completed 100 ms after the last of them, its stop delivered to the node's
    partition: the node, and the samples (those after ``running`` not applied yet)."""
    ts, node_id = await placed(recorder)
    trace = list(replay(read_trace(data_dir / "nvml" / "h100_trace.jsonl"), node_id, 1.0, ts + 1000))
    samples = trace[: samples_taken * 8 : 8]
    base = {"workload_id": "w1", "node_id": node_id, "progress_pct": None, "checkpoint_uri": None,
            "decision_id": None, "reason": None, "request": None}  # fmt: skip
    async with agents.workloads.test_context() as agent:
        await agent.put(encode("workload.events", {**base, "event_id": "s", "type": "started",
                                                   "ts_ms": samples[0]["ts_ms"]}), key=b"w1")  # fmt: skip
    await deliver_internal(recorder)
    async with agents.node_telemetry.test_context() as agent:
        for sample in samples[:running]:
            await agent.put(encode("node.telemetry", sample), key=node_id.encode())
    stop = {**base, "event_id": "c", "type": "completed", "ts_ms": samples[running - 1]["ts_ms"] + 100}
    async with agents.workloads.test_context() as agent:
        await agent.put(encode("workload.events", stop), key=b"w1")
    await deliver_internal(recorder)
    return node_id, samples


async def test_interim_records_while_it_runs_and_energy_up_to_its_stop(recorder, data_dir):
    ts, node_id = await placed(recorder)
    trace = list(replay(read_trace(data_dir / "nvml" / "h100_trace.jsonl"), node_id, 1.0, ts + 1000))
    samples = trace[: 8 * 36 : 8]  # one a second or so, for 36 s
    base = {"workload_id": "w1", "node_id": node_id, "progress_pct": None, "checkpoint_uri": None,
            "decision_id": None, "reason": None, "request": None}  # fmt: skip
    async with agents.workloads.test_context() as agent:
        start = {**base, "event_id": "s", "type": "started", "ts_ms": samples[0]["ts_ms"]}
        await agent.put(encode("workload.events", start), key=b"w1")
    await deliver_internal(recorder)  # its share reaches the node's partition
    running, exit_sample = samples[:-1], samples[-1]
    async with agents.node_telemetry.test_context() as agent:
        for sample in running:
            await agent.put(encode("node.telemetry", sample), key=node_id.encode())
    expected = metering_boundaries(running[0]["ts_ms"], running[-1]["ts_ms"], 10_000)
    interim = recorder.on("billing.records")
    assert [b["billing_id"] for b in interim] == [f"bill-w1-{node_id}-{at}" for at in expected] and len(expected) >= 3
    assert all(b["gpu_hours"] > 0 and b["kwh"] > 0 and b["node_id"] == node_id for b in interim)
    price = node_running_table[node_id]["w1"].price_eur_per_gpu_hour  # what it pays there, kept with its share
    assert price and all(b["charge"] == round(price * b["gpu_hours"], 2) for b in interim)

    stop_ms = running[-1]["ts_ms"] + 400  # the process exits between two samples
    async with agents.workloads.test_context() as agent:
        done = {**base, "event_id": "c", "type": "completed", "ts_ms": stop_ms, "progress_pct": 100.0}
        await agent.put(encode("workload.events", done), key=b"w1")
    assert node_running_table[node_id]["w1"].until_ms == stop_ms  # stopped, not yet handed over
    await deliver_internal(recorder)
    async with agents.node_telemetry.test_context() as agent:  # the node's sample at exit
        await agent.put(encode("node.telemetry", exit_sample), key=node_id.encode())
    await deliver_internal(recorder)

    receipt = recorder.on("settlement.receipts")[0]
    assert receipt["intervals"][-1]["end_ms"] == stop_ms  # up to the stop: not to the last sample before it
    gap_ms = exit_sample["ts_ms"] - running[-1]["ts_ms"]
    last_piece_j = (exit_sample["energy_j"] - running[-1]["energy_j"]) * 400 / gap_ms
    counter_j = running[-1]["energy_j"] - running[0]["energy_j"] + last_piece_j
    reg_pue = agents.node_state_table[node_id].value.registration.pue  # the table keeps stamped values
    assert receipt["kwh"] == pytest.approx(counter_j / 3.6e6 * reg_pue, rel=0.01)
    billings = recorder.on("billing.records")
    final = billings[-1]
    assert final["billing_id"] == "bill-w1-final" and len(billings) == len(interim) + 1
    assert final["metering_ids"] == [*sorted(b["billing_id"] for b in interim), "bill-w1-final"]
    assert sum(b["kwh"] for b in billings) == pytest.approx(receipt["kwh"], abs=1e-6 * len(billings))  # rounded each
    ran_h = (stop_ms - samples[0]["ts_ms"]) / 3.6e6  # a whole GPU, from its start to its stop
    assert sum(b["gpu_hours"] for b in billings) == pytest.approx(ran_h, abs=1e-5)
    assert "w1" not in workload_accrual_table and node_running_table[node_id] == {}  # handed over: its share is gone


async def test_who_runs_on_a_node_is_sent_to_the_partition_its_telemetry_comes_on(recorder):
    """An outside producer partitions node.telemetry as it likes (docs/producers.md): the owner sends a node's
    shares to the partition number the node's samples came on, where its energy is accrued."""
    from streams.app import NODE_SHARES_TOPIC, node_share_table

    ts, node_id = await placed(recorder)
    async with agents.node_telemetry.test_context() as agent:  # the node's samples now come on partition 3
        sample = {"node_id": node_id, "ts_ms": ts + 500, "sm_util_pct": 1.0, "mem_used_mb": 1, "mem_total_mb": 81_920,
                  "power_w": 100.0, "energy_j": None, "health": "healthy", "mig_slices_free": 0}  # fmt: skip
        await agent.put(encode("node.telemetry", sample), key=node_id.encode(), partition=3)
    await deliver_internal(recorder)
    recorder.internal_partitions.clear()
    base = {"workload_id": "w1", "node_id": node_id, "progress_pct": None, "checkpoint_uri": None,
            "decision_id": None, "reason": None, "request": None}  # fmt: skip
    async with agents.workloads.test_context() as agent:
        await agent.put(encode("workload.events", {**base, "event_id": "s", "type": "started", "ts_ms": ts + 600}),
                        key=b"w1")  # fmt: skip
    shares = [(k, part) for t, k, part in recorder.internal_partitions if t == NODE_SHARES_TOPIC.get_topic_name()]
    assert shares == [(node_id, 3)]
    await deliver_internal(recorder)
    assert set(node_share_table[node_id]) == {"w1"}  # kept on the node's partition for its accrual


async def test_a_hand_over_delivered_again_after_settling_sends_the_same_receipt_and_bill_again(
    recorder, offsets_as_a_log, monkeypatch, data_dir
):
    """The owner was killed after the hand-over that settled a workload was durable (its accruals gone, the workload
    settled) but maybe before its receipt and billing record were delivered: the next owner gets the hand-over again,
    finds nothing to do, and the outbox sends the same records again; once they were delivered, nothing more."""
    from streams.app import ACCRUALS_CLOSED_TOPIC

    node_id, samples = await ran_then_stopped(recorder, data_dir, 5, 4)
    async with agents.node_telemetry.test_context() as agent:
        await agent.put(encode("node.telemetry", samples[-1]), key=node_id.encode())
    topic = ACCRUALS_CLOSED_TOPIC.get_topic_name()
    (hand_over,) = [value for t, _key, value in recorder.internal if t == topic]
    recorder.internal.clear()

    async def never_acked(pending, timeout_s):  # the brokers never ack what it sends: the outbox keeps it
        return [], len(pending)

    acked = recorder.delivered
    monkeypatch.setattr(recorder, "delivered", never_acked)
    settling = ("settlement.receipts", "billing.records")
    recorder.sent.clear()
    async with agents.accruals_closed.test_context() as agent:
        await agent.put(hand_over, key=b"w1")
    first = [(t, k, r) for t, k, r in recorder.sent if t in settling]
    assert [t for t, _k, _r in first] == list(settling) and "w1" not in workload_accrual_table
    tp = next(tp for tp in offsets_as_a_log if tp[0] == topic)
    end = offsets_as_a_log[tp]

    async def delivered_again() -> list[tuple[str, str, dict]]:
        recorder.sent.clear()
        offsets_as_a_log[tp] = end - 1
        async with agents.accruals_closed.test_context() as agent:
            await agent.put(hand_over, key=b"w1")
            await asyncio.sleep(0.01)
        return [(t, k, r) for t, k, r in recorder.sent if t in settling]

    assert await delivered_again() == first  # the same receipt and bill, ids, signature and all
    monkeypatch.setattr(recorder, "delivered", acked)
    assert await delivered_again() == first  # delivered this time: the outbox forgets them ...
    assert await delivered_again() == []  # ... and a later delivery sends nothing


async def test_a_hand_over_lost_with_its_worker_is_sent_again_at_the_next_sample_until_the_owner_took_it(
    recorder, data_dir
):
    """The node's partition handed a stopped workload's energy over and its state went out (the energy no longer
    pending there), but the hand-over itself was lost with the worker: the next sample hands the same intervals over
    again; once the owner took it and its word came back (the share gone), a later sample sends nothing more."""
    from streams.app import ACCRUALS_CLOSED_TOPIC, node_accrual_table

    node_id, samples = await ran_then_stopped(recorder, data_dir, 8, 4)
    topic = ACCRUALS_CLOSED_TOPIC.get_topic_name()

    async def sample_sent(sample: dict) -> list:
        async with agents.node_telemetry.test_context() as agent:
            await agent.put(encode("node.telemetry", sample), key=node_id.encode())
        return [json.loads(value) for t, _key, value in recorder.internal if t == topic]

    (first,) = await sample_sent(samples[4])
    recorder.internal.clear()  # lost with the worker that sent it ...
    agents._recent_points.clear()  # ... and the partition's next owner has none of the samples it kept in memory
    (again,) = await sample_sent(samples[5])
    assert again["intervals"] == first["intervals"] and again["intervals"]  # the same energy, up to the stop
    assert recorder.on("settlement.receipts") == []
    await deliver_internal(recorder)  # the owner takes it, settles, and its word (the share gone) travels back
    (receipt,) = recorder.on("settlement.receipts")
    assert receipt["kwh"] == pytest.approx(sum(i["kwh"] for i in first["intervals"]), abs=1e-6)
    assert node_running_table[node_id] == {}
    assert await sample_sent(samples[6]) == [] and node_id not in node_accrual_table


async def test_an_ended_workload_whose_settling_landed_only_in_part_is_settled_again_with_the_same_ids(
    recorder, data_dir
):
    """A worker killed while its settling run's changelog records landed: the pending settlement is gone, but the
    share on the node (and the receipt) did not land. The node's partition hands the share over again; the owner
    takes it (the share is there) and settles the ended workload again from its state: the same receipt and bill
    ids, which the sinks keep once."""
    from streams.app import ACCRUALS_CLOSED_TOPIC, pending_settlement_table

    node_id, samples = await ran_then_stopped(recorder, data_dir, 6, 4)
    topic = ACCRUALS_CLOSED_TOPIC.get_topic_name()
    share_before = dict(node_running_table[node_id])
    async with agents.node_telemetry.test_context() as agent:
        await agent.put(encode("node.telemetry", samples[4]), key=node_id.encode())
    (hand_over,) = [value for t, _key, value in recorder.internal if t == topic]
    recorder.internal.clear()
    async with agents.accruals_closed.test_context() as agent:
        await agent.put(hand_over, key=b"w1")
    (first,) = recorder.on("settlement.receipts")
    assert "w1" not in pending_settlement_table
    faust_private.table_data(node_running_table)[node_id] = share_before  # what landed: not the share's removal
    recorder.internal.clear()
    recorder.sent.clear()
    async with agents.node_telemetry.test_context() as agent:  # the partition hands it over again
        await agent.put(encode("node.telemetry", samples[5]), key=node_id.encode())
    await deliver_internal(recorder)
    (again,) = recorder.on("settlement.receipts")
    assert again["receipt_id"] == first["receipt_id"] and again["kwh"] == first["kwh"]
    assert [b["billing_id"] for b in recorder.on("billing.records")] == ["bill-w1-final"]
