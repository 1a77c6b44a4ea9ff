"""What only an admin does: declare a surplus event (readings published over its span), issue tokens."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from api.deps import ProducerDep, SettingsDep, StoreDep
from api.fleet import now_ms
from api.models import SurplusEvent, TokenRequest
from api.responses import IssuedToken, SurplusScheduled, documented
from api.security import AdminCaller, Role, issue_token
from sinks import queries
from toogreen.domain.admin import surplus_event_readings
from toogreen.domain.zones import ZONES
from toogreen.kafka.producer import RecordProducer
from toogreen.topics import GRID_READINGS

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


@router.post("/tokens", status_code=201, response_model=IssuedToken)
def create_token(body: TokenRequest, store: StoreDep, caller: AdminCaller) -> dict:
    """A bearer token for a role and subject; the token is shown once, only its hash is stored."""
    token = issue_token(store, Role(body.role), body.subject, created_by=caller.subject)
    return {"role": body.role, "subject": body.subject, "token": token}
