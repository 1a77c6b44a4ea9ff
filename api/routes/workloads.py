"""Workloads: submit one, list them, one with its decisions, moves, receipt and bills."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Query

from api.deps import ProducerDep, StoreDep
from api.fleet import now_ms
from api.models import WorkloadSubmission
from api.responses import Submitted, WorkloadDetail, WorkloadRow
from api.security import DeveloperCaller, PersonCaller
from sinks import queries
from toogreen.codec import EncodeError
from toogreen.submission import submission_event
from toogreen.topics import WORKLOAD_EVENTS

router = APIRouter(prefix="/api/v1/workloads", tags=["workloads"])
MAX_OFFSET = 2**63 - 1


def decision_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A routing decision with its JSON columns parsed."""
    return {
        **row,
        "alternatives": json.loads(row["alternatives"]),
        "grid_windows": json.loads(row["grid_windows"]),
        "exclusions": json.loads(row["exclusions"] or "[]"),
    }


@router.post("", status_code=202, response_model=Submitted)
def submit(body: WorkloadSubmission, producer: ProducerDep, caller: DeveloperCaller) -> dict:
    if body.deadline is not None and body.deadline.timestamp() * 1000 <= now_ms():
        raise HTTPException(422, "deadline is in the past")
    event = submission_event(body.to_request(submitter=caller.subject))
    try:
        producer.send(WORKLOAD_EVENTS.name, event["workload_id"], event)
        producer.flush(timeout_s=10)
    except EncodeError as exc:
        raise HTTPException(422, str(exc)) from exc
    except Exception as exc:
        raise HTTPException(503, f"could not publish the submission: {exc}") from exc
    wid = event["workload_id"]
    return {"workload_id": wid, "status": "submitted", "href": f"/api/v1/workloads/{wid}"}


@router.get("", response_model=list[WorkloadRow])
def list_workloads(
    store: StoreDep,
    caller: PersonCaller,
    status: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[dict]:
    return queries.list_workloads(store, caller.scope, status, limit, offset)


@router.get("/{workload_id}", response_model=WorkloadDetail)
def get_workload(store: StoreDep, caller: PersonCaller, workload_id: str) -> dict:
    row = queries.workload(store, caller.scope, workload_id)
    if row is None:
        raise HTTPException(404, f"unknown workload {workload_id!r} (a new submission appears within seconds)")
    decisions = queries.workload_decisions(store, workload_id)
    events = queries.applied_workload_events(store, workload_id)
    checkpoints = {e["decision_id"]: e["checkpoint_uri"] for e in events if e["type"] == "migrating"}
    moves = [
        {
            "decision_id": d["decision_id"], "ts_ms": d["ts_ms"], "from_node_id": d["from_node_id"],
            "from_zone": d["from_zone"], "to_node_id": d["chosen_node_id"], "to_zone": d["chosen_zone"],
            "checkpoint_uri": checkpoints.get(d["decision_id"]), "score_gain": d["score_gain"],
            "saved_gco2": d["saved_gco2"], "move_cost_s": d["move_cost_s"], "reason": d["reason"],
        }
        for d in decisions
        if d["type"] == "reroute"
    ]  # fmt: skip
    return {
        **row,
        "moves": moves,
        "receipt_id": queries.receipt_id_of(store, workload_id),
        "billing": queries.workload_billing(store, workload_id),
        "decisions": [decision_from_row(d) for d in decisions],
        "events": events,
    }
