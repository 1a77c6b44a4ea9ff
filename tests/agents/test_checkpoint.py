"""The checkpoint, the one way agents write tables: writes are seen at once, and when the run ends each changed key's
changelog record (a tombstone for a deletion) and the agent's own log records go out, then, once the brokers acked
them, the effects (the latest record per coalescing key, commands), then the run's events are acked; a stamped
table's values say which events they took in. Driven through a real Faust agent over the app's real tables."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams import checkpoint, faust_private
from streams.agents import RoutingViews
from streams.app import app, node_reservation_table, routing_node_table, zone_meta_table, zone_window_table
from streams.checkpoint import Checkpoint, Stamped
from tests.agents.harness import clear_tables
from tests.builders import NOW_MS, registration, telemetry
from toogreen.domain.clock import SYSTEM_CLOCK
from toogreen.domain.node_state import apply_registration, apply_telemetry
from toogreen.domain.records import Hold, ZoneMeta

calls: list[tuple[Any, ...]] = []  # what the probe saw and caused, in order
RUN = {"max_events": 3, "max_delay_ms": 60_000.0, "max_runs_in_flight": 0}
VIEWS = RoutingViews(resync_s=3600.0, clock=SYSTEM_CLOCK)  # a router's fleet over the tables, long between resyncs
ACKED: dict[str, asyncio.Future[None]] = {}  # the brokers' acks of the state records, by value (the tests set them)


class Recorder:
    async def emit(self, topic: str, key: str, record: Any) -> asyncio.Future[None]:
        calls.append(("emit", topic, key, record))
        return _acked(record)

    async def emit_internal(
        self, topic: str, key: str, record: Any, partition: int | None = None
    ) -> asyncio.Future[None]:
        return await self.emit(topic, key, record)

    async def delivered(self, pending: list[Any], timeout_s: float) -> tuple[list[BaseException], int]:
        calls.append(("delivered",))
        done, late = await asyncio.wait([asyncio.ensure_future(p) for p in pending], timeout=timeout_s)
        return [e for f in done if (e := f.exception()) is not None], len(late)

    async def dead_letter(self, event: Any, stage: str, reason: str) -> None:
        calls.append(("dead", reason))


@app.agent()
async def probe(stream: Any) -> None:
    """Each event is an instruction: ("set", key, watermark), ("pop", key), ("emit", coalesce key, n) or
    ("hold", node, workload) (a write through the checkpointed mapping)."""
    run = Checkpoint(stream, Recorder(), int(RUN["max_events"]), RUN["max_delay_ms"], stamped=[zone_window_table],
                     state_wait_s=0.5, max_runs_in_flight=int(RUN["max_runs_in_flight"]))  # fmt: skip
    run.on_rolled_back = VIEWS.keys_restored  # as the router's agents do (streams/agents.py)
    holds = run.table(node_reservation_table)
    async for event in run.events():
        op, *args = event.value
        if op == "set":
            run.set(zone_meta_table, args[0], ZoneMeta(watermark_ms=args[1]))
            calls.append(("read", zone_meta_table.get(args[0])))
        elif op == "pop":
            run.pop(zone_meta_table, args[0])
        elif op == "emit":
            run.emit_latest(args[0], "zone.windows", "FR", lambda n=args[1]: {"n": n})
        elif op == "hold":
            holds[args[0]] = {args[1]: Hold(vram_mb=1)}
        elif op == "route":  # what the router would see now
            fleet, _zones = VIEWS.inputs()
            calls.append(("fleet", {v.node_id: v.whole_tenants for v in fleet}))
        elif op == "log":  # a record that is state, then an effect another process acts on
            run.emit("node.commands", "n1", {"out": args[0]})
            run.log("workload.events", "w1", {"log": args[0]})
        elif op == "count":  # a stamped value: each event is counted once, however often it is delivered
            calls.append(("applied", run.applied(zone_window_table, args[0])))
            if not run.applied(zone_window_table, args[0]):
                run.set(zone_window_table, args[0], (run.get(zone_window_table, args[0]) or 0) + 1)


def _acked(record: Any) -> asyncio.Future[None]:
    if isinstance(record, dict) and "log" in record and record["log"] in ACKED:
        return ACKED[record["log"]]
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    clear_tables()
    calls.clear()
    out: list[tuple[str, Any, Any, int]] = []
    ACKED.clear()

    async def publish(table, partition, key, value):
        out.append((table.name, key, value, partition))
        calls.append(("changelog", table.name, key))
        return _acked(None)

    monkeypatch.setattr(faust_private, "publish_changelog", publish)
    real_ack = faust_private.ack

    async def ack(stream, event):
        calls.append(("ack", event.value[0]))
        return await real_ack(stream, event)

    monkeypatch.setattr(faust_private, "ack", ack)
    yield out
    clear_tables()


async def test_writes_are_read_at_once_and_sent_once_per_key_when_the_run_ends(sent):
    async with probe.test_context() as agent:
        await agent.put(("set", "FR", 1), partition=1)
        await agent.put(("set", "FR", 2), partition=2)
        assert ("read", ZoneMeta(watermark_ms=2)) in calls and sent == []  # the run is open: nothing sent yet
        await agent.put(("emit", "w", 1), partition=0)
    assert sent == [("zone-meta", "FR", ZoneMeta(watermark_ms=2), 2)]  # the partition of the last write
    kinds = [c[0] for c in calls if c[0] in ("changelog", "delivered", "emit", "ack")]
    assert kinds == ["changelog", "delivered", "emit", "ack", "ack", "ack"]  # state, its acks, effects, then acks


async def test_a_deletion_is_a_tombstone_and_only_the_latest_record_per_key_is_built(sent):
    async with probe.test_context() as agent:
        await agent.put(("set", "DE", 1))
        await agent.put(("emit", "w", 1))
        await agent.put(("emit", "w", 2))
        await agent.put(("pop", "DE"))  # a run of its own: popped after it was sent
        await agent.put(("pop", "nowhere"))  # not in the table: nothing to send
        await agent.put(("emit", "x", 3))
    assert "DE" not in zone_meta_table
    assert [(name, key, value) for name, key, value, _p in sent] == [
        ("zone-meta", "DE", ZoneMeta(watermark_ms=1)),
        ("zone-meta", "DE", None),
    ]
    assert [c[3] for c in calls if c[0] == "emit"] == [{"n": 2}, {"n": 3}]


async def test_a_write_through_the_mapping_is_a_checkpoint_write(sent):
    async with probe.test_context() as agent:
        for i in range(3):
            await agent.put(("hold", "n1", f"w{i}"))
    assert node_reservation_table["n1"] == {"w2": Hold(vram_mb=1)}
    assert [(name, key) for name, key, _v, _p in sent] == [("node-reservations", "n1")]


async def test_a_run_no_further_event_closes_is_sent_by_its_timer(sent, monkeypatch):
    monkeypatch.setitem(RUN, "max_delay_ms", 50.0)
    async with probe.test_context() as agent:
        await agent.put(("set", "ES", 7))
        assert sent == []
        await asyncio.sleep(0.3)
        assert sent == [("zone-meta", "ES", ZoneMeta(watermark_ms=7), 0)] and ("ack", "set") in calls


async def test_effects_leave_only_after_the_runs_state_is_acked_then_the_events_are_acked(sent):
    async with probe.test_context() as agent:
        await agent.put(("log", 1))
        await agent.put(("log", 2))
        await agent.put(("set", "DE", 3))
    order = [c[:2] if c[0] == "emit" else c[:1] for c in calls if c[0] in ("changelog", "emit", "delivered", "ack")]
    assert order == [
        ("changelog",), ("emit", "workload.events"), ("emit", "workload.events"),  # the state ...
        ("delivered",),  # ... acked by the brokers
        ("emit", "node.commands"), ("emit", "node.commands"),  # then what acts on it, in order
        ("ack",), ("ack",), ("ack",),
    ]  # fmt: skip


async def test_runs_overlap_but_their_effects_and_acks_keep_the_runs_order(sent, monkeypatch):
    """The agent goes on while a run waits for its acks; a later run's effects wait for the earlier run's."""
    monkeypatch.setitem(RUN, "max_events", 1)
    monkeypatch.setitem(RUN, "max_runs_in_flight", 8)
    ACKED[1] = asyncio.get_running_loop().create_future()  # the first run's state is slow to be acked
    async with probe.test_context() as agent:
        await agent.put(("log", 1))
        await agent.put(("log", 2))  # taken while the first run waits
        await asyncio.sleep(0.05)
        logs = [c[3] for c in calls if c[0] == "emit" and c[1] == "workload.events"]
        assert logs == [{"log": 1}, {"log": 2}]  # both runs' state is out ...
        assert not [c for c in calls if c[0] == "emit" and c[1] == "node.commands"]  # ... no effect yet
        ACKED[1].set_result(None)
        await asyncio.sleep(0.05)
    effects = [c[3] for c in calls if c[0] == "emit" and c[1] == "node.commands"]
    assert effects == [{"out": 1}, {"out": 2}]
    assert [c[0] for c in calls if c[0] in ("emit", "ack")][-4:] == ["emit", "ack", "emit", "ack"]


async def test_a_run_whose_state_is_not_acked_in_time_lets_its_effects_leave_and_one_that_failed_is_not_acked(
    sent, monkeypatch
):
    monkeypatch.setitem(RUN, "max_events", 1)
    loop = asyncio.get_running_loop()
    ACKED[1] = loop.create_future()  # acked late: the effects leave after state_wait_s, the ack waits for it
    loop.call_later(1.0, ACKED[1].set_result, None)
    ACKED[2] = loop.create_future()
    ACKED[2].set_exception(RuntimeError("broker says no"))
    async with probe.test_context() as agent:
        await agent.put(("log", 1))
        await asyncio.sleep(0.7)
        assert [c[3]["out"] for c in calls if c[0] == "emit" and c[1] == "node.commands"] == [1]
        assert not [c for c in calls if c[0] == "ack"]  # its state is not durable yet: not acked
        await agent.put(("log", 2))
        await agent.put(("log", 3))
    effects = [c[3]["out"] for c in calls if c[0] == "emit" and c[1] == "node.commands"]
    assert effects == [1, 3]  # the late run's effects left; the failed run's did not
    assert len([c for c in calls if c[0] == "ack"]) == 2  # nor was its event acked (it is delivered again)


async def test_a_run_whose_state_failed_sends_its_keys_values_again_and_is_acked_once_they_land(sent, monkeypatch):
    """A changelog record lost while a broker was away: the key's value as it is now is sent again, and the run's
    events are acked (their offsets committable) only once it landed, never before."""
    monkeypatch.setitem(RUN, "max_events", 1)
    loop = asyncio.get_running_loop()
    failures = [RuntimeError("NotLeaderForPartition, retries spent")]
    publish = faust_private.publish_changelog

    async def flaky(table, partition, key, value):
        landed = await publish(table, partition, key, value)
        if failures:
            lost: asyncio.Future[None] = loop.create_future()
            lost.set_exception(failures.pop())
            return lost
        return landed

    monkeypatch.setattr(faust_private, "publish_changelog", flaky)
    async with probe.test_context() as agent:
        await agent.put(("set", "FR", 5))
        await agent.put(("set", "DE", 6))
    assert sent[:2] == [("zone-meta", "FR", ZoneMeta(watermark_ms=5), 0)] * 2  # sent, failed, sent again
    assert [c for c in calls if c[0] == "ack"] == [("ack", "set"), ("ack", "set")]
    assert calls.index(("ack", "set")) > [i for i, c in enumerate(calls) if c == ("changelog", "zone-meta", "FR")][1]


async def test_a_stamped_value_takes_each_event_in_once_however_often_it_is_delivered(sent, offsets_as_a_log):
    async with probe.test_context() as agent:
        for _ in range(3):
            await agent.put(("count", "k"), partition=0)
        await agent.put(("count", "k"), partition=1)  # another source partition: its own offsets
    stored = zone_window_table["k"]
    topic = next(source for source in stored.applied if source.endswith(":0")).rsplit(":", 1)[0]
    end = {p: offsets_as_a_log[(topic, p)] for p in (0, 1)}  # the next offset of each partition
    assert stored == Stamped(4, {f"{topic}:0": end[0] - 1, f"{topic}:1": end[1] - 1})
    offsets_as_a_log[(topic, 0)] -= 2  # the last two events of partition 0 are delivered again
    calls.clear()
    async with probe.test_context() as agent:
        for _ in range(3):
            await agent.put(("count", "k"), partition=0)
    assert [c[1] for c in calls if c[0] == "applied"] == [True, True, False]  # the third is new
    assert zone_window_table["k"].value == 5
    assert [c[2] for c in calls if c[0] == "changelog"] == ["k"]  # the value and its stamp: one record


async def test_a_rebalance_rolls_the_open_run_back_and_voids_the_effects_and_acks_of_a_run_in_flight(sent, monkeypatch):
    """After a rebalance the events since the last commit come again (to this worker or a partition's new owner):
    what this worker had not finished must not go out (a window older than the new owner's, a second start)."""
    monkeypatch.setitem(RUN, "max_events", 2)
    monkeypatch.setitem(RUN, "max_runs_in_flight", 8)
    ACKED[1] = asyncio.get_running_loop().create_future()  # the first run's state is in flight at the rebalance
    async with probe.test_context() as agent:
        await agent.put(("set", "FR", 1))
        await agent.put(("log", 1))  # ends the first run: its state is sent, its effects wait for the acks
        await agent.put(("set", "FR", 7))  # the second run is open ...
        assert zone_meta_table["FR"] == ZoneMeta(watermark_ms=7)
        checkpoint.partitions_revoked()  # ... when the partitions are revoked
        ACKED[1].set_result(None)
        await agent.put(("set", "DE", 3))  # the first event after the rebalance
        await agent.put(("set", "DE", 4))
        await asyncio.sleep(0.05)
    assert zone_meta_table["FR"] == ZoneMeta(watermark_ms=1)  # the open run's write is undone
    assert [c[3] for c in calls if c[0] == "emit" and c[1] == "node.commands"] == []  # the first run's effects
    acks = [c[1] for c in calls if c[0] == "ack"]
    assert acks == ["set", "set"]  # only the run after the rebalance: the others come again
    assert [(name, key) for name, key, _v, _p in sent] == [("zone-meta", "FR"), ("zone-meta", "DE")]


async def test_a_rolled_back_hold_leaves_the_routers_fleet_as_the_tables_say(monkeypatch):
    """A run of the router that reserved a GPU and then saw its fleet (a run of more than one event) is rolled back
    at a rebalance: the hold is gone from the table, and from the fleet the next routing sees (not kept until the
    next full resync, which left the GPU busy with a workload that was never placed there)."""
    monkeypatch.setitem(RUN, "max_events", 10)
    state = apply_telemetry(apply_registration(None, registration("n1")), telemetry("n1", ts_ms=NOW_MS))
    faust_private.table_data(routing_node_table)["n1"] = state
    VIEWS.resync()
    async with probe.test_context() as agent:
        await agent.put(("hold", "n1", "w1"))
        VIEWS.node_changed("n1")  # what the router does after a reservation
        await agent.put(("route",))  # the same open run routes again: n1 is held in the fleet
        checkpoint.partitions_revoked()
        await agent.put(("route",))  # the first event after the rebalance: the open run is rolled back first
    assert node_reservation_table.get("n1") is None
    assert [c[1] for c in calls if c[0] == "fleet"] == [{"n1": 1}, {"n1": 0}]


async def test_events_taken_before_their_partitions_seek_are_left_out_and_each_is_counted_once(
    sent, offsets_as_a_log, monkeypatch
):
    """After a rebalance Faust hands a stream a partition's records from where its consumer was (offsets 12, 13)
    before it seeks the partition to the committed offset (3) and the records from 3 come again. Taken in, the
    first ones stamped the key with 13, and 3-11 then looked applied: 9 of the zone's readings lost. Left out (not
    acked as applied), they are counted when they come in order."""
    from faust.types import TP

    consumer = app.consumer
    assert isinstance(consumer, faust_private.Consumer)
    topic = probe.channel.get_topic_name()
    tp = TP(topic, 0)
    monkeypatch.setattr(consumer, "_assigned_once", True)
    monkeypatch.setattr(consumer, "_intake", {})
    async with probe.test_context() as agent:
        offsets_as_a_log[(topic, 0)] = 12
        for _ in range(2):
            await agent.put(("count", "k"), partition=0)  # before the seek
        consumer._intake[tp] = (app.consumer_generation_id, 3)  # as the seek to the committed offset 3 leaves it
        offsets_as_a_log[(topic, 0)] = 3
        for _ in range(11):
            await agent.put(("count", "k"), partition=0)  # 3-13, in order
    assert zone_window_table["k"] == Stamped(11, {f"{topic}:0": 13})
    assert [c[1] for c in calls if c[0] == "applied"] == [False] * 11
