"""A closed loop for scenario tests: the real agents under ``test_context()``, a simulated fleet obeying their
node commands, and what the agents emit fed back in as the broker would."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import streams.agents as agents
from connectors.fleet_sim import SimulatedFleet
from streams import faust_private
from streams.app import (
    ACCRUALS_CLOSED_TOPIC,
    INGEST_ZONE_VIEWS_TOPIC,
    NODE_SHARES_TOPIC,
    NODE_VIEWS_TOPIC,
    ZONE_VIEWS_TOPIC,
    ingest_zone_view_table,
    node_accrual_table,
    node_reservation_table,
    node_running_table,
    node_share_table,
    node_state_table,
    pending_settlement_table,
    queued_workload_table,
    routing_node_table,
    running_workload_table,
    settlement_outbox_table,
    workload_accrual_table,
    workload_outbox_table,
    workload_state_table,
    zone_meta_table,
    zone_view_table,
    zone_window_table,
)
from streams.emit import RecordingEmitter
from tests.builders import grid_reading, now_ms
from toogreen.codec import encode
from toogreen.submission import submission_event

TABLES = (zone_window_table, zone_meta_table, zone_view_table, node_state_table, node_reservation_table,
          workload_state_table, node_running_table, workload_accrual_table, running_workload_table,
          queued_workload_table, routing_node_table, node_accrual_table, pending_settlement_table,
          workload_outbox_table, node_share_table, ingest_zone_view_table, settlement_outbox_table)  # fmt: skip
_OWNER_AGENTS = {
    NODE_VIEWS_TOPIC.get_topic_name(): agents.node_views,
    ZONE_VIEWS_TOPIC.get_topic_name(): agents.zone_views,
    ACCRUALS_CLOSED_TOPIC.get_topic_name(): agents.accruals_closed,
    NODE_SHARES_TOPIC.get_topic_name(): agents.node_shares,  # to the node's ingest partition
    INGEST_ZONE_VIEWS_TOPIC.get_topic_name(): agents.ingest_zone_views,  # to every ingest partition
}


async def deliver_internal(recorder: RecordingEmitter) -> int:
    """Hand what the ingest agents sent the placement owner (node and zone views, closed accruals) to its agents,
    as the single-partition topics would; returns how many records it delivered."""
    delivered = 0
    while recorder.internal:
        batch, recorder.internal[:] = list(recorder.internal), []
        for topic, key, value in batch:
            async with _OWNER_AGENTS[topic].test_context() as agent:
                await agent.put(value, key=key.encode())
            delivered += 1
    return delivered


def clear_tables(tables: Iterable[Any] = TABLES) -> None:
    """Tables are module globals: empty them (and the router's fleet built from them) between tests."""
    for table in tables:
        faust_private.table_data(table).clear()
    agents.routing.resync()


def reading(zone: str, ts: int, carbon: float, renewable: float = 60.0) -> dict[str, Any]:
    return grid_reading(zone, ts, carbon, renewable_pct=renewable)


class Loop:
    def __init__(self, recorder: RecordingEmitter, fleet: SimulatedFleet) -> None:
        self.rec, self.fleet = recorder, fleet
        self.seen = 0
        self.grid_ts = now_ms()

    async def setup(self, zones: dict[str, float], renewable: float = 60.0) -> None:
        ts = now_ms()
        async with agents.node_registrations.test_context() as agent:
            for reg in self.fleet.registrations(ts):
                await agent.put(encode("node.registry", reg), key=reg["node_id"].encode())
        await self.drain()
        await self.telemetry()
        await self.grid(zones, renewable)

    async def telemetry(self, dt_s: float = 1.0) -> None:
        samples, events = self.fleet.tick(now_ms(), dt_s)
        async with agents.node_telemetry.test_context() as agent:
            for s in samples:
                await agent.put(encode("node.telemetry", s), key=s["node_id"].encode())
        await self.drain()
        for e in events:
            await self.workload_event(e)

    async def grid(self, zones: dict[str, float], renewable: float = 60.0) -> None:
        """One reading per zone in a fresh 5-minute window (so each is the window's mean)."""
        self.grid_ts = max(self.grid_ts + 300_000, now_ms())
        async with agents.zone_windows.test_context() as agent:
            for zone, carbon in zones.items():
                await agent.put(
                    encode("grid.readings", reading(zone, self.grid_ts, carbon, renewable)), key=zone.encode()
                )
        await self.drain()

    async def submit(self, workload_id: str, **request: Any) -> None:
        body = {"name": workload_id, "workload_type": "training", "image": "img", "vram_mb": 70_000,
                "expected_hours": 10.0, **request}  # fmt: skip
        await self.workload_event(submission_event(body, workload_id, now_ms()))

    async def workload_event(self, event: dict[str, Any]) -> None:
        async with agents.workloads.test_context() as agent:
            await agent.put(encode("workload.events", event), key=event["workload_id"].encode())
        await self.drain()

    async def drain(self) -> None:
        """Feed back what the agents emitted: views to the placement owner, workload events to the router, node
        commands to the fleet."""
        await deliver_internal(self.rec)
        while self.seen < len(self.rec.sent) or self.rec.internal:
            if self.rec.internal:
                await deliver_internal(self.rec)
                continue
            topic, _key, record = self.rec.sent[self.seen]
            self.seen += 1
            if topic == "workload.events":
                await self.workload_event(record)
            elif topic == "node.commands":
                for event in self.fleet.apply_command(record, now_ms()):
                    await self.workload_event(event)

    def decisions(self, workload_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            d
            for d in self.rec.on("routing.decisions")
            if (workload_id is None or d["workload_id"] == workload_id) and (kind is None or d["type"] == kind)
        ]

    def where(self, workload_id: str) -> str | None:
        return workload_state_table[workload_id].node_id

    def state(self, workload_id: str) -> str:
        return workload_state_table[workload_id].state


async def feed_fleet(ts: int) -> None:
    """The simulated fleet registered with one telemetry sample each, and a reading for every zone, as the
    placement owner sees them."""
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    async with agents.node_registrations.test_context() as agent:
        for reg in fleet.registrations(ts):
            await agent.put(encode("node.registry", reg), key=reg["node_id"].encode())
    async with agents.node_telemetry.test_context() as agent:
        for sample in fleet.tick(ts, 1.0)[0]:
            await agent.put(encode("node.telemetry", sample), key=sample["node_id"].encode())
    async with agents.zone_windows.test_context() as agent:
        for zone in ("FR", "DE", "ES", "PT", "NL", "BE", "IT", "GB", "US-CAL-CISO", "US-NY-NYIS", "US-TEX-ERCO"):
            await agent.put(
                encode("grid.readings", grid_reading(zone, ts, 300.0, renewable_pct=30.0)), key=zone.encode()
            )
    await deliver_internal(agents.emitter)  # the views reach the placement owner
