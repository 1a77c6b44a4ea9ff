"""The Faust agents: decode → call the pure domain logic → emit. Nothing else happens here.

- ``zone_windows``: grid readings into event-time tumbling and hopping windows per zone (``zone.windows``), and
  each zone's routing view.
- ``node_registrations`` / ``node_telemetry``: each node's state and routing view.
- ``workloads``: the workload state machine and the router (``routing.decisions``, ``node.commands``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faust.types import EventT

from streams.app import (
    WINDOW_SPECS,
    app,
    grid_topic,
    node_reservation_table,
    node_state_table,
    registry_topic,
    settings,
    telemetry_topic,
    workload_state_table,
    workload_topic,
    zone_meta_table,
    zone_view_table,
    zone_window_table,
)
from streams.emit import Emitter, KafkaEmitter
from toogreen.codec import DecodeError, decode
from toogreen.domain.node_state import apply_registration, apply_telemetry, to_node_view
from toogreen.domain.router import handle_workload_event
from toogreen.domain.scoring import NodeView, ZoneView
from toogreen.domain.validation import (
    validate_grid_reading,
    validate_registration,
    validate_telemetry,
    validate_workload_request,
)
from toogreen.domain.windows import WindowAggregate
from toogreen.domain.zone_state import ZoneMeta, apply_reading, keys_needed, zone_view_from_dict, zone_view_to_dict
from toogreen.topics import GRID_READINGS, NODE_REGISTRY, NODE_TELEMETRY, WORKLOAD_EVENTS, ZONE_WINDOWS

emitter: Emitter = KafkaEmitter(app)

Validator = Callable[[dict[str, Any]], list[str]]


async def decode_or_dead_letter(event: EventT, topic: str, stage: str, validator: Validator) -> dict[str, Any] | None:
    """The decoded, validated record, or None after dead-lettering it with the reason."""
    try:
        record = decode(topic, event.message.value)
    except DecodeError as exc:
        await emitter.dead_letter(event, stage, str(exc))
        return None
    problems = validator(record)
    if problems:
        await emitter.dead_letter(event, stage, f"{topic}: invalid record: {'; '.join(problems)}")
        return None
    return record


@app.agent(grid_topic)
async def zone_windows(stream: Any) -> None:
    grace_ms, keep_ms = settings.windows.grace_s * 1000, settings.windows.keep_s * 1000
    async for event in stream.events():
        reading = await decode_or_dead_letter(event, GRID_READINGS.name, "zone_windows", validate_grid_reading)
        if reading is None:
            continue
        zone = reading["zone"]
        meta = ZoneMeta.from_dict(zone_meta_table.get(zone))
        keys = keys_needed(zone, reading["ts_ms"], meta, WINDOW_SPECS)
        windows = {k: WindowAggregate.from_dict(v) for k in keys if (v := zone_window_table.get(k)) is not None}
        outcome = apply_reading(reading, windows, meta, WINDOW_SPECS, grace_ms, keep_ms, settings.surplus)
        zone_meta_table[zone] = outcome.meta.to_dict()
        if outcome.too_late:
            await emitter.dead_letter(
                event,
                "zone_windows",
                f"reading at {reading['ts_ms']} is older than the watermark {outcome.meta.watermark_ms} "
                f"minus the {settings.windows.grace_s} s grace period: too late for any window",
            )
            continue
        for key, aggregate, surplus in outcome.updated:
            zone_window_table[key] = aggregate.to_dict()
            await emitter.emit(ZONE_WINDOWS.name, zone, aggregate.to_record(surplus))
        for key in outcome.expired_keys:
            zone_window_table.pop(key, None)
        if outcome.view is not None:
            zone_view_table[zone] = zone_view_to_dict(outcome.view)


@app.agent(registry_topic)
async def node_registrations(stream: Any) -> None:
    async for event in stream.events():
        reg = await decode_or_dead_letter(event, NODE_REGISTRY.name, "node_registrations", validate_registration)
        if reg is not None:
            node_state_table[reg["node_id"]] = apply_registration(node_state_table.get(reg["node_id"]), reg)


@app.agent(telemetry_topic)
async def node_telemetry(stream: Any) -> None:
    async for event in stream.events():
        sample = await decode_or_dead_letter(event, NODE_TELEMETRY.name, "node_telemetry", validate_telemetry)
        if sample is not None:
            node_state_table[sample["node_id"]] = apply_telemetry(node_state_table.get(sample["node_id"]), sample)


def _validate_workload_event(event: dict[str, Any]) -> list[str]:
    if event["type"] == "submitted":
        if event.get("request") is None:
            return ["a submitted event needs its request"]
        return validate_workload_request(event["request"])
    return []


def routing_inputs() -> tuple[list[NodeView], dict[str, ZoneView]]:
    """Every routable node and zone as the tables hold them now."""
    nodes = []
    for node_id, state in node_state_table.items():
        reserved = sum((node_reservation_table.get(node_id) or {}).values())
        view = to_node_view(state, reserved)
        if view is not None:
            nodes.append(view)
    zones = {zone: zone_view_from_dict(data) for zone, data in zone_view_table.items()}
    return nodes, zones


@app.agent(workload_topic)
async def workloads(stream: Any) -> None:
    async for event in stream.events():
        record = await decode_or_dead_letter(event, WORKLOAD_EVENTS.name, "workloads", _validate_workload_event)
        if record is None:
            continue
        workload_id = record["workload_id"]
        nodes, zones = routing_inputs() if record["type"] == "submitted" else ([], {})
        result = handle_workload_event(record, workload_state_table.get(workload_id), nodes, zones, settings)
        if result.rejected_reason:
            await emitter.dead_letter(event, "workloads", result.rejected_reason)
            continue
        if result.state is not None:
            workload_state_table[workload_id] = result.state
        if result.reserve:
            node_id, wid, vram_mb = result.reserve
            node_reservation_table[node_id] = {**(node_reservation_table.get(node_id) or {}), wid: vram_mb}
        if result.release:
            node_id, wid = result.release
            held = dict(node_reservation_table.get(node_id) or {})
            if held.pop(wid, None) is not None:
                node_reservation_table[node_id] = held
        for out in result.emits:
            await emitter.emit(out.topic, out.key, out.record)


__all__ = ["node_registrations", "node_telemetry", "routing_inputs", "workloads", "zone_windows"]
