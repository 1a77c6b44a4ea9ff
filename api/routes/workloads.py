"""Workloads: submit one, list them, one with its decisions, moves, receipt and bills."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query

from api.deps import ProducerDep, StoreDep
from api.fleet import now_ms
from api.models import WorkloadSubmission
from api.read_models import read_model
from api.responses import Submitted, WorkloadDetail, WorkloadRow, documented
from api.security import DeveloperCaller, PersonCaller
from sinks import queries
from sinks.duckdb_store import Store
from toogreen.codec import EncodeError
from toogreen.submission import submission_event
from toogreen.topics import WORKLOAD_EVENTS

router = APIRouter(
    prefix="/api/v1/workloads", tags=["workloads"], responses=documented(400, 401, 403, 404, 413, 422, 503)
)
MAX_OFFSET = 2**63 - 1


def decision_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A routing decision with its JSON columns parsed."""
    return {
        **row,
        "alternatives": json.loads(row["alternatives"]),
        "grid_windows": json.loads(row["grid_windows"]),
        "exclusions": json.loads(row["exclusions"] or "[]"),
    }


IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
        description="The same key again (same body) answers the same workload and never submits a second one",
    ),
]  # fmt: skip


def _stored(store: Store, submitter: str, key: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """The submission stored under ``key``, or None; 422 when the key was used for a different request."""
    known = queries.submission_by_key(store, submitter, key)
    if known is not None and json.loads(known["event"])["request"] != request:
        raise HTTPException(422, f"Idempotency-Key {key!r} was used for a different submission")
    return known


@router.post("", status_code=202, response_model=Submitted)
def submit(
    body: WorkloadSubmission,
    store: StoreDep,
    producer: ProducerDep,
    caller: DeveloperCaller,
    idempotency_key: IdempotencyKey = None,
) -> dict:
    """Store the submission (so the workload answers at once, status submitted), then publish it. A retry with
    the same Idempotency-Key returns the same workload; if its first publish failed, it is published now."""
    event = submission_event(body.to_request(submitter=caller.subject))
    known = _stored(store, caller.subject, idempotency_key, event["request"]) if idempotency_key else None
    if known is None:
        if body.deadline is not None and body.deadline.timestamp() * 1000 <= now_ms():
            raise HTTPException(422, "deadline is in the past")
        try:
            queries.insert_submission(
                store, event["workload_id"], caller.subject, idempotency_key, event["ts_ms"], json.dumps(event)
            )
        except queries.SubmissionKeyTaken:  # a concurrent retry stored it first
            known = _stored(store, caller.subject, idempotency_key or "", event["request"])
    if known is not None:
        event = json.loads(known["event"])
        if known["published"]:
            return _submitted(event["workload_id"])
    try:
        producer.send(WORKLOAD_EVENTS.name, event["workload_id"], event)
        producer.flush(timeout_s=10, require_delivered=True)  # a failed delivery is a 503, never "published"
    except EncodeError as exc:
        raise HTTPException(422, str(exc)) from exc
    except Exception as exc:
        raise HTTPException(
            503, f"could not publish the submission (retry with the same Idempotency-Key): {exc}"
        ) from exc
    queries.mark_published(store, event["workload_id"])
    return _submitted(event["workload_id"])


def _submitted(workload_id: str) -> dict[str, str]:
    return {"workload_id": workload_id, "status": "submitted", "href": f"/api/v1/workloads/{workload_id}"}


def _not_yet_stored(submission: dict[str, Any]) -> dict[str, Any]:
    """A published submission as a workload in status submitted, until the sink stores its event."""
    event = json.loads(submission["event"])
    return {**event["request"], "workload_id": event["workload_id"], "status": "submitted",
            "submitted_ms": event["ts_ms"], "updated_ms": event["ts_ms"], "moves": [], "receipt_id": None,
            "billing": [], "decisions": [], "events": []}  # fmt: skip


@router.get("", response_model=list[WorkloadRow])  # type: ignore[valid-type]
@read_model(list[WorkloadRow])  # type: ignore[valid-type]
def list_workloads(
    store: StoreDep,
    caller: PersonCaller,
    status: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[dict]:
    return queries.list_workloads(store, caller.scope, status, limit, offset)


def move_figures(events: list[dict[str, Any]], decision_id: str) -> dict[str, Any]:
    """What the node agents measured of one move: the origin's ``checkpointed`` (size, sha256, checkpoint and
    store seconds) and the target's ``resumed`` (transfer and restore seconds, the downtime)."""
    origin = next((e for e in events if e["type"] == "checkpointed" and e["decision_id"] == decision_id), {})
    target = next((e for e in events if e["type"] == "resumed" and e["decision_id"] == decision_id), {})
    return {
        "checkpoint_sha256": origin.get("checkpoint_sha256") or target.get("checkpoint_sha256"),
        "checkpoint_bytes": origin.get("checkpoint_bytes") or target.get("checkpoint_bytes"),
        "checkpoint_s": origin.get("checkpoint_s"), "store_s": origin.get("store_s"),
        "transfer_s": target.get("transfer_s"), "restore_s": target.get("restore_s"),
        "downtime_s": target.get("downtime_s"),
    }  # fmt: skip


@router.get("/{workload_id}", response_model=WorkloadDetail)
@read_model(WorkloadDetail)
def get_workload(store: StoreDep, caller: PersonCaller, workload_id: str) -> dict:
    row = queries.workload(store, caller.scope, workload_id)
    if row is None and (submitted := queries.published_submission(store, caller.scope, workload_id)):
        return _not_yet_stored(submitted)
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
            **move_figures(events, d["decision_id"]),
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
        "running_on": queries.running_node(store, row["node_id"])
        if row["status"] == "running" and row["node_id"]
        else None,
        "events": events,
    }
