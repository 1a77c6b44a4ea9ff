"""The checkpoint, the one way agents write tables: writes are seen at once, and when the run ends each changed key's
changelog record (a tombstone for a deletion) and the latest record per coalescing key go out, then the run's
events are acked. Driven through a real Faust agent over the app's real tables."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams import faust_private
from streams.app import app, node_reservation_table, zone_meta_table
from streams.checkpoint import Checkpoint
from tests.agents.harness import clear_tables
from toogreen.domain.records import Hold, ZoneMeta

calls: list[tuple[Any, ...]] = []  # what the probe saw and caused, in order
RUN = {"max_events": 3, "max_delay_ms": 60_000.0}


class Recorder:
    async def emit(self, topic: str, key: str, record: Any) -> None:
        calls.append(("emit", topic, key, record))

    async def dead_letter(self, event: Any, stage: str, reason: str) -> None:
        calls.append(("dead", reason))


@app.agent()
async def probe(stream: Any) -> None:
    """Each event is an instruction: ("set", key, watermark), ("pop", key), ("emit", coalesce key, n) or
    ("hold", node, workload) (a write through the checkpointed mapping)."""
    run = Checkpoint(stream, Recorder(), int(RUN["max_events"]), RUN["max_delay_ms"])
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


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    clear_tables()
    calls.clear()
    out: list[tuple[str, Any, Any, int]] = []
    for table in (zone_meta_table, node_reservation_table):

        def send(partition, key, value, *a, t=table, **kw):
            out.append((t.name, key, value, partition))
            calls.append(("changelog", t.name, key))

        monkeypatch.setattr(table, "send_changelog", send, raising=False)
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
    kinds = [c[0] for c in calls if c[0] in ("changelog", "emit", "ack")]
    assert kinds == ["changelog", "emit", "ack", "ack", "ack"]  # acked only once its records are handed over


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
