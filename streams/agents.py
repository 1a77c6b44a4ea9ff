"""The Faust agents: decode → call the pure domain logic → emit. Nothing else happens here.

- ``zone_windows``: grid readings into event-time tumbling windows per zone (hopping windows are assembled from
  them), both emitted on ``zone.windows``, and each zone's routing view.
- ``node_registrations`` / ``node_telemetry``: each node's state and routing view.
- ``workloads``: the workload state machine and the router (``routing.decisions``, ``node.commands``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from faust.types import EventT

from streams.app import (
    WINDOW_SPECS,
    app,
    grid_topic,
    node_reservation_table,
    node_running_table,
    node_state_table,
    queued_workload_table,
    registry_topic,
    running_workload_table,
    settings,
    telemetry_topic,
    workload_accrual_table,
    workload_state_table,
    workload_topic,
    zone_meta_table,
    zone_view_table,
    zone_window_table,
)
from streams.coalesce import CoalescedRun
from streams.emit import Emitter, KafkaEmitter
from toogreen.codec import DecodeError, decode
from toogreen.domain.accounting import Slot, accrue, energy_between_j
from toogreen.domain.fleet import Fleet
from toogreen.domain.node_state import apply_registration, apply_telemetry, to_node_view
from toogreen.domain.rerouting import workloads_on_node, workloads_to_rescore, workloads_to_rescore_on_capacity
from toogreen.domain.router import handle_workload_event, queue_entry, retry_order, workload_event
from toogreen.domain.scoring import node_carbon
from toogreen.domain.settlement import settle
from toogreen.domain.validation import (
    validate_grid_reading,
    validate_registration,
    validate_telemetry,
    validate_workload_request,
)
from toogreen.domain.views import ZoneView
from toogreen.domain.windows import Surplus, WindowAggregate
from toogreen.domain.zone_state import ZoneMeta, apply_reading, keys_needed, zone_view_from_dict, zone_view_to_dict
from toogreen.signing import load_or_create_key, sign_receipt
from toogreen.topics import (
    BILLING_RECORDS,
    GRID_READINGS,
    NODE_REGISTRY,
    NODE_TELEMETRY,
    SETTLEMENT_RECEIPTS,
    WORKLOAD_EVENTS,
    ZONE_WINDOWS,
)

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
    run = CoalescedRun(stream, emitter, settings.worker.coalesce_max_events, settings.worker.coalesce_max_delay_ms)
    changed: dict[str, ZoneView] = {}  # zones whose routing view changed in this run
    async for event in run.events():
        reading = await decode_or_dead_letter(event, GRID_READINGS.name, "zone_windows", validate_grid_reading)
        if reading is not None and (view := await absorb_reading(run, event, reading)) is not None:
            changed[view.zone] = view
        if run.ends_here() and changed:
            now = int(time.time() * 1000)
            for view in changed.values():
                # the scan returns a list before any rescore request touches the table
                for workload_id in workloads_to_rescore(view, running_workload_table, now, settings.migration):
                    await request_rescore(workload_id, now, f"zone {view.zone} window changed")
            changed.clear()


# window key -> (the table's value, its aggregate): a window is parsed from the table only when the value changed
# behind the agent's back (restored from the changelog)
_parsed_windows: dict[str, tuple[dict[str, Any], WindowAggregate]] = {}


def _window(key: str) -> WindowAggregate | None:
    value = zone_window_table.get(key)
    if value is None:
        return None
    cached = _parsed_windows.get(key)
    if cached is not None and cached[0] is value:
        return cached[1]
    aggregate = WindowAggregate.from_dict(value)
    _parsed_windows[key] = (value, aggregate)
    return aggregate


def _hopping_record(assemble_hop: Callable[[], WindowAggregate]) -> dict[str, Any]:
    return assemble_hop().to_record(Surplus())


async def absorb_reading(run: CoalescedRun, event: EventT, reading: dict[str, Any]) -> ZoneView | None:
    """Fold one reading into its zone's windows; the zone's new routing view, if it has one."""
    grace_ms, keep_ms = settings.windows.grace_s * 1000, settings.windows.keep_s * 1000
    zone = reading["zone"]
    meta = ZoneMeta.from_dict(zone_meta_table.get(zone))
    keys = keys_needed(zone, reading["ts_ms"], meta, WINDOW_SPECS)
    windows = {k: aggregate for k in keys if (aggregate := _window(k)) is not None}
    outcome = apply_reading(reading, windows, meta, WINDOW_SPECS, grace_ms, keep_ms, settings.surplus)
    run.set(zone_meta_table, zone, outcome.meta.to_dict())
    if outcome.too_late:
        await emitter.dead_letter(
            event,
            "zone_windows",
            f"reading at {reading['ts_ms']} is older than the watermark {outcome.meta.watermark_ms} "
            f"minus the {settings.windows.grace_s} s grace period: too late for any window",
        )
        return None
    assert outcome.stored is not None  # a reading in time always lands in its tumbling window
    key, tumbling, surplus = outcome.stored  # the tumbling window is stored; hopping ones are assembled from it
    run.set(zone_window_table, key, stored := tumbling.to_dict())
    _parsed_windows[key] = (stored, tumbling)
    run.emit_latest(key, ZONE_WINDOWS.name, zone, partial(tumbling.to_record, surplus))
    for hop_key, assemble_hop in outcome.hopping:
        run.emit_latest(hop_key, ZONE_WINDOWS.name, zone, partial(_hopping_record, assemble_hop))
    for key in outcome.expired_keys:
        run.pop(zone_window_table, key)
        _parsed_windows.pop(key, None)
    if outcome.view is None:
        return None
    run.set(zone_view_table, zone, zone_view_to_dict(outcome.view))
    return outcome.view


@app.agent(registry_topic)
async def node_registrations(stream: Any) -> None:
    async for event in stream.events():
        reg = await decode_or_dead_letter(event, NODE_REGISTRY.name, "node_registrations", validate_registration)
        if reg is not None:
            node_state_table[reg["node_id"]] = apply_registration(node_state_table.get(reg["node_id"]), reg)
            node_changed(reg["node_id"])


def accrue_energy(run: CoalescedRun, node_id: str, before: dict[str, Any] | None, sample: dict[str, Any]) -> None:
    """Give each workload running on the node its share of the energy drawn since the previous sample."""
    running = node_running_table.get(node_id) or {}
    if not running or not before or "telemetry" not in before or "registration" not in before:
        return
    prev, reg = before["telemetry"], before["registration"]
    if sample["ts_ms"] <= prev["last_seen_ms"]:
        return
    zone = zone_view_table.get(reg["zone"])
    if zone is None:
        return
    energy_j, method = energy_between_j(
        {"ts_ms": prev["last_seen_ms"], "power_w": prev["power_w"], "energy_j": prev["energy_j"]}, sample
    )
    declared = reg.get("declared_carbon_gco2_per_kwh") if reg["node_type"] == "recycler" else None
    span_ms = sample["ts_ms"] - prev["last_seen_ms"]
    for workload_id, held in running.items():
        # energy drawn before the workload started here is not its own: pro-rate the first interval
        start_ms = max(prev["last_seen_ms"], held["since_ms"])
        if start_ms >= sample["ts_ms"]:
            continue
        slot = Slot(
            node_id=node_id,
            zone=reg["zone"],
            pue=reg["pue"],
            share=held["fraction"] or 1.0 / len(running),
            carbon_gco2_per_kwh=zone["carbon_gco2_per_kwh"],
            window_start_ms=zone["window_start_ms"],
            market_gco2_per_kwh=declared,
        )
        own_j = energy_j * (sample["ts_ms"] - start_ms) / span_ms
        intervals = workload_accrual_table.get(workload_id) or []
        run.set(workload_accrual_table, workload_id, accrue(intervals, slot, start_ms, sample["ts_ms"], own_j, method))


@app.agent(telemetry_topic)
async def node_telemetry(stream: Any) -> None:
    run = CoalescedRun(stream, emitter, settings.worker.coalesce_max_events, settings.worker.coalesce_max_delay_ms)
    async for event in run.events():
        sample = await decode_or_dead_letter(event, NODE_TELEMETRY.name, "node_telemetry", validate_telemetry)
        if sample is not None:
            before = node_state_table.get(sample["node_id"])
            accrue_energy(run, sample["node_id"], before, sample)
            run.set(node_state_table, sample["node_id"], apply_telemetry(before, sample))
            node_changed(sample["node_id"])
            was = ((before or {}).get("telemetry") or {}).get("health")
            if was is not None and was != sample["health"]:
                now = int(time.time() * 1000)
                for workload_id in workloads_on_node(sample["node_id"], running_workload_table):
                    await request_rescore(workload_id, now, f"node {sample['node_id']} is now {sample['health']}")


def _validate_workload_event(event: dict[str, Any]) -> list[str]:
    if event["type"] == "submitted":
        if event.get("request") is None:
            return ["a submitted event needs its request"]
        return validate_workload_request(event["request"])
    return []


# The router's fleet: node views kept in step with the tables, rebuilt only for the nodes marked changed, and all of
# them after the tables were recovered from their changelogs (and every ``fleet_resync_s``, as a safety net).
_fleet = Fleet()
_changed_nodes: set[str] = set()
_fleet_synced_at = float("-inf")
_NO_HOLDS: dict[str, Any] = {}


def node_changed(node_id: str) -> None:
    _changed_nodes.add(node_id)


def _refresh_node(node_id: str) -> None:
    state = node_state_table.get(node_id)
    view = None if state is None else to_node_view(state, node_reservation_table.get(node_id) or _NO_HOLDS)
    if view is None:
        _fleet.remove(node_id)
    else:
        _fleet.upsert(view)


def resync_fleet() -> None:
    """Rebuild every node's view on the next routing (after the tables were replaced wholesale)."""
    global _fleet_synced_at
    _fleet_synced_at = float("-inf")


@app.on_rebalance_complete.connect
async def _tables_recovered(_app: Any, **_kwargs: Any) -> None:
    resync_fleet()  # what the changelogs restored is in the tables now
    # What is alive now (code, the restored tables) mostly stays alive: keep it out of the cyclic collector's full
    # passes, which otherwise stalled the worker for 40-70 ms each (the p99 of routing at 500/s). Frozen objects
    # are still freed by reference counting; only garbage cycles among them would stay.
    gc.collect()
    gc.freeze()


def routing_inputs() -> tuple[Fleet, dict[str, ZoneView]]:
    """Every routable node and zone as the tables hold them now."""
    global _fleet_synced_at
    now = time.monotonic()
    if now - _fleet_synced_at >= settings.worker.fleet_resync_s:
        _fleet_synced_at = now
        _changed_nodes.clear()
        for node_id in {*node_state_table.keys(), *(v.node_id for v in _fleet)}:
            _refresh_node(node_id)
    while _changed_nodes:
        _refresh_node(_changed_nodes.pop())
    zones = {zone: zone_view_from_dict(data) for zone, data in zone_view_table.items()}
    return _fleet, zones


@app.agent(workload_topic)
async def workloads(stream: Any) -> None:
    # decisions and commands go out at once; only the tables' changelog records wait for the end of the run
    w = settings.worker
    run = CoalescedRun(stream, emitter, w.coalesce_max_events, w.router_coalesce_max_delay_ms)
    async for event in run.events():
        record = await decode_or_dead_letter(event, WORKLOAD_EVENTS.name, "workloads", _validate_workload_event)
        if record is None:
            continue
        workload_id = record["workload_id"]
        needs_views = record["type"] in ("submitted", "retry", "rescore")
        nodes, zones = routing_inputs() if needs_views else (Fleet(), {})
        result = handle_workload_event(record, workload_state_table.get(workload_id), nodes, zones, settings)
        if result.rejected_reason:
            await emitter.dead_letter(event, "workloads", result.rejected_reason)
            continue
        if result.state is not None:
            run.set(workload_state_table, workload_id, result.state)
        for node_id, hold in result.reserve:
            run.set(node_reservation_table, node_id, {**(node_reservation_table.get(node_id) or {}), workload_id: hold})
            node_changed(node_id)
        for node_id in result.release:
            held = dict(node_reservation_table.get(node_id) or {})
            if held.pop(workload_id, None) is not None:
                run.set(node_reservation_table, node_id, held)
                node_changed(node_id)
        if result.stopped_on:
            running = dict(node_running_table.get(result.stopped_on) or {})
            if running.pop(workload_id, None) is not None:
                run.set(node_running_table, result.stopped_on, running)
            run.pop(running_workload_table, workload_id)
        if result.running_on:
            node_id, fraction = result.running_on
            held = {"fraction": fraction if fraction < 1.0 else 0.0, "since_ms": record["ts_ms"]}
            run.set(node_running_table, node_id, {**(node_running_table.get(node_id) or {}), workload_id: held})
            track_running(run, workload_id, node_id, nodes, zones)
        if result.queued is True and queued_workload_table.get(workload_id) is None:
            run.set(queued_workload_table, workload_id, queue_entry(result.state or {}, record["ts_ms"]))
        elif result.queued is False:
            run.pop(queued_workload_table, workload_id)
        for out in result.emits:
            await emitter.emit(out.topic, out.key, out.record)
        if result.settle:
            await settle_workload(run, workload_id, result.state or {}, record["ts_ms"])
        for freed in result.release:
            now = int(time.time() * 1000)
            for other in workloads_to_rescore_on_capacity(freed, running_workload_table, now, settings.migration):
                await request_rescore(other, now, f"capacity freed on {freed}")


def track_running(run: CoalescedRun, workload_id: str, node_id: str, nodes: Fleet, zones: dict[str, ZoneView]) -> None:
    """Remember where a workload runs and how clean that is, so grid changes can find it."""
    if not len(nodes):
        nodes, zones = routing_inputs()
    node = nodes.get(node_id)
    zone = zones.get(node.zone) if node else None
    if node is None or zone is None:
        return
    run.set(running_workload_table, workload_id, {
        "node_id": node_id, "zone": node.zone, "carbon_gco2_per_kwh": node_carbon(node, zone),
        "last_rescore_ms": int(time.time() * 1000),
    })  # fmt: skip


async def request_rescore(workload_id: str, now_ms: int, why: str) -> None:
    """Ask the workload's own partition to re-score it (its router owns its state)."""
    entry = running_workload_table.get(workload_id)
    if entry is not None:
        running_workload_table[workload_id] = {**entry, "last_rescore_ms": now_ms}
    event = workload_event(workload_id, now_ms, "rescore", f"rescore:{workload_id}:{now_ms}", reason=why)
    await emitter.emit(WORKLOAD_EVENTS.name, workload_id, event)


@app.timer(interval=settings.migration.queue_retry_s, on_leader=True)
async def retry_queue() -> None:
    """Queued workloads are tried again as capacity frees and the grid changes (the most urgent first, a bounded
    number per tick, so a long queue cannot drown the router in retries)."""
    now = int(time.time() * 1000)
    for workload_id in retry_order(dict(queued_workload_table.items()))[: settings.migration.queue_retry_batch]:
        event = workload_event(workload_id, now, "retry", f"retry:{workload_id}:{now}", reason="queue retry")
        await emitter.emit(WORKLOAD_EVENTS.name, workload_id, event)


@lru_cache(maxsize=1)
def signing_key() -> Ed25519PrivateKey:
    return load_or_create_key(settings.settlement.signing_key_path)


async def settle_workload(run: CoalescedRun, workload_id: str, state: dict[str, Any], now_ms: int) -> None:
    """Receipt and billing record for what the workload ran, then forget its accruals."""
    settled = settle(state, workload_accrual_table.get(workload_id) or [], now_ms, settings)
    if settled is None:
        return
    receipt, billing = settled
    await emitter.emit(SETTLEMENT_RECEIPTS.name, workload_id, sign_receipt(receipt, signing_key()))
    await emitter.emit(BILLING_RECORDS.name, workload_id, billing)
    run.pop(workload_accrual_table, workload_id)


__all__ = ["node_registrations", "node_telemetry", "routing_inputs", "workloads", "zone_windows"]
