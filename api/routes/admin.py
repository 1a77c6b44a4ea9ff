"""What only an admin does: declare a surplus event (readings published over its span), move a running workload
or drain a node (``move_requested`` events the router turns into checkpoint → stop → resume, and the node held
unroutable until undrained), issue tokens."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from api.deps import ProducerDep, SettingsDep, StoreDep
from api.fleet import now_ms
from api.models import MoveRequest, SurplusEvent, TokenRequest
from api.responses import DrainRequested, IssuedToken, MoveRequested, SurplusScheduled, documented
from api.security import AdminCaller, Role, issue_token
from sinks import queries
from sinks.duckdb_store import Store
from toogreen.domain.admin import surplus_event_readings
from toogreen.domain.records import EventKind
from toogreen.domain.router import workload_event
from toogreen.domain.zones import ZONES
from toogreen.kafka.producer import RecordProducer
from toogreen.topics import GRID_READINGS, NODE_REGISTRY, WORKLOAD_EVENTS

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=documented(400, 401, 403, 413, 422, 503))


async def _publish_over_time(producer: RecordProducer, readings: list[dict[str, Any]]) -> None:
    """Each reading when its time comes (event time = wall time), so no reading lies in the future."""
    for reading in readings:
        delay = (reading["ts_ms"] - now_ms()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        producer.send(GRID_READINGS.name, reading["zone"], reading)
        await asyncio.to_thread(producer.flush, 10)


@router.post("/surplus-events", status_code=202, response_model=SurplusScheduled)
async def surplus_event(
    request: Request,
    body: SurplusEvent,
    store: StoreDep,
    settings: SettingsDep,
    producer: ProducerDep,
    _caller: AdminCaller,
) -> dict:
    if body.zone not in ZONES:
        raise HTTPException(422, f"unknown zone {body.zone!r}: known zones are {', '.join(ZONES)}")
    readings = surplus_event_readings(
        body.zone, queries.latest_reading(store, body.zone), ZONES[body.zone].typical_carbon_gco2_per_kwh,
        body.curtailment_mw, body.minutes, now_ms(), settings.api.surplus_event_step_s,
    )  # fmt: skip
    pending: set[asyncio.Task[None]] = request.app.state.pending
    task = asyncio.create_task(_publish_over_time(producer, readings))
    pending.add(task)
    task.add_done_callback(pending.discard)
    return {"zone": body.zone, "curtailment_mw": body.curtailment_mw, "readings": len(readings),
            "from_ms": readings[0]["ts_ms"], "until_ms": readings[-1]["ts_ms"], "source": "admin"}  # fmt: skip


def _request_move(producer: RecordProducer, workload: dict[str, Any], node_id: str | None, why: str) -> dict:
    now = now_ms()
    wid = workload["workload_id"]
    event_id = f"move:{wid}:{now}"
    event = workload_event(wid, now, EventKind.MOVE_REQUESTED, event_id, node_id=node_id, reason=why)
    producer.send(WORKLOAD_EVENTS.name, wid, event.to_wire())
    return {"workload_id": wid, "from_node_id": workload["node_id"], "node_id": node_id, "event_id": event_id}


def _publish(producer: RecordProducer) -> None:
    try:
        producer.flush(timeout_s=10)
    except Exception as exc:
        raise HTTPException(503, f"could not publish the move request: {exc}") from exc


@router.post("/workloads/{workload_id}/move", status_code=202, response_model=MoveRequested,
             responses=documented(404, 409))  # fmt: skip
def move_workload(
    workload_id: str, body: MoveRequest, store: StoreDep, producer: ProducerDep, caller: AdminCaller
) -> dict:
    """Move a running workload (checkpoint, stop, resume from the checkpoint) to ``node_id``, or to the best other
    node under the usual rules. The router decides and records it as a reroute decision (or a no_move with the
    reason it could not); follow it on the workload."""
    workload = queries.workload(store, caller.scope, workload_id)
    if workload is None:
        raise HTTPException(404, f"unknown workload {workload_id!r}")
    if workload["status"] != "running":
        raise HTTPException(409, f"workload {workload_id} is {workload['status']}: only a running workload moves")
    if body.node_id is not None and body.node_id == workload["node_id"]:
        raise HTTPException(409, f"workload {workload_id} already runs on {body.node_id}")
    moved = _request_move(producer, workload, body.node_id, f"operator move by {caller.subject}")
    _publish(producer)
    return moved


_REGISTRATION_COLUMNS = ("provider", "node_type", "gpu_model", "vram_mb", "zone", "lat", "lng", "pue", "mig_capable",
                         "wallet", "billing_account", "declared_energy_source", "declared_carbon_gco2_per_kwh",
                         "max_power_w")  # fmt: skip


def _set_drained(store: Store, producer: RecordProducer, node_id: str, drained: bool) -> None:
    """Republish the node's registration as an operator's drain (or undrain): the router keeps the flag until the
    opposite one comes; the node's own re-registrations leave it as it is."""
    rows = store.query(f"SELECT {', '.join(_REGISTRATION_COLUMNS)} FROM nodes WHERE node_id = ?", [node_id])
    if not rows:
        raise HTTPException(404, f"unknown node {node_id!r}")
    registration = rows[0]
    if registration["provider"] is None:
        raise HTTPException(409, f"node {node_id} has not registered yet")
    producer.send(NODE_REGISTRY.name, node_id, {**registration, "node_id": node_id, "ts_ms": now_ms(),
                                                 "drained": drained})  # fmt: skip


@router.post("/nodes/{node_id}/drain", status_code=202, response_model=DrainRequested, responses=documented(404, 409))
def drain_node(node_id: str, store: StoreDep, producer: ProducerDep, caller: AdminCaller) -> dict:
    """Hold the node unroutable (no new work is placed there until it is undrained) and move every workload running
    on it to the best other node (each as an operator move)."""
    _set_drained(store, producer, node_id, True)
    moves = []
    for wid in queries.running_workloads_on(store, node_id):
        workload = queries.workload(store, caller.scope, wid)
        if workload is not None:
            moves.append(_request_move(producer, workload, None, f"drain of {node_id} by {caller.subject}"))
    _publish(producer)
    return {"node_id": node_id, "moves": moves}


@router.post("/nodes/{node_id}/undrain", status_code=202, response_model=DrainRequested,
             responses=documented(404, 409))  # fmt: skip
def undrain_node(node_id: str, store: StoreDep, producer: ProducerDep, _caller: AdminCaller) -> dict:
    """Let the router place work on a drained node again (nothing moves back by itself: re-scoring may)."""
    _set_drained(store, producer, node_id, False)
    _publish(producer)
    return {"node_id": node_id, "moves": []}


@router.post("/tokens", status_code=201, response_model=IssuedToken)
def create_token(body: TokenRequest, store: StoreDep, caller: AdminCaller) -> dict:
    """A bearer token for a role and subject; the token is shown once, only its hash is stored."""
    token = issue_token(store, Role(body.role), body.subject, created_by=caller.subject)
    return {"role": body.role, "subject": body.subject, "token": token}
