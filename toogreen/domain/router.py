"""What the router does with one workload event: apply it to the workload's state machine and, for a
submission, decide where it runs. Returns the records to emit; the Faust agent only decodes and sends."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from toogreen.domain.lifecycle import TERMINAL, IllegalTransition, WorkloadState, next_state
from toogreen.domain.scoring import Candidate, Decision, NodeView, WorkloadSpec, ZoneView, route
from toogreen.settings import Settings
from toogreen.topics import NODE_COMMANDS, ROUTING_DECISIONS, WORKLOAD_EVENTS

APPLIED_IDS_KEPT = 16


@dataclass(frozen=True)
class Emit:
    topic: str
    key: str
    record: dict[str, Any]


@dataclass
class RouterResult:
    state: dict[str, Any] | None  # new workload state (None: unchanged)
    emits: list[Emit] = field(default_factory=list)
    reserve: tuple[str, str, int] | None = None  # (node_id, workload_id, vram_mb)
    release: tuple[str, str] | None = None  # (node_id, workload_id)
    rejected_reason: str | None = None  # the event is illegal: dead-letter it with this reason
    running_on: str | None = None  # the workload now draws energy on this node
    stopped_on: str | None = None  # ... and no longer on this one
    settle: bool = False  # the workload has ended: settle what it ran


def decision_id_for(workload_id: str, sequence: int, kind: str) -> str:
    """Deterministic: a replay of the same events yields the same decision ids (and so no duplicate rows)."""
    return hashlib.sha256(f"{workload_id}|{sequence}|{kind}".encode()).hexdigest()[:20]


def workload_spec(workload_id: str, request: Mapping[str, Any]) -> WorkloadSpec:
    return WorkloadSpec(
        workload_id=workload_id,
        vram_mb=int(request["vram_mb"]),
        expected_hours=float(request["expected_hours"]),
        green_only=bool(request.get("green_only")),
        max_carbon_gco2_kwh=request.get("max_carbon_gco2_kwh"),
        budget_eur=request.get("budget_eur"),
        deadline_ms=request.get("deadline_ms"),
    )


def _candidate_record(c: Candidate) -> dict[str, Any]:
    return {
        "node_id": c.node_id,
        "zone": c.zone,
        "node_type": c.node_type,
        "tier": c.tier,
        "eligible": c.eligible,
        "excluded_reason": c.excluded_reason,
        "score": c.score,
        "carbon_part": c.carbon_part,
        "price_part": c.price_part,
        "utilisation_part": c.utilisation_part,
        "carbon_gco2_per_kwh": c.carbon_gco2_per_kwh,
        "price_eur_per_gpu_hour": c.price_eur_per_gpu_hour,
        "utilisation_pct": c.utilisation_pct,
    }


def decision_record(decision: Decision, decision_id: str, workload_id: str, kind: str, ts_ms: int) -> dict[str, Any]:
    """The ``routing.decisions`` record of a decision, with every alternative and the windows used."""
    chosen = decision.chosen
    return {
        "decision_id": decision_id,
        "workload_id": workload_id,
        "ts_ms": ts_ms,
        "type": kind if chosen else "rejected",
        "chosen_node_id": chosen.node_id if chosen else None,
        "chosen_zone": chosen.zone if chosen else None,
        "tier": chosen.tier if chosen else None,
        "score": chosen.score if chosen else None,
        "carbon_part": chosen.carbon_part if chosen else None,
        "price_part": chosen.price_part if chosen else None,
        "utilisation_part": chosen.utilisation_part if chosen else None,
        "reason": decision.reason,
        "alternatives": [_candidate_record(c) for c in decision.alternatives],
        "grid_windows": [
            {
                "zone": z.zone,
                "window_start_ms": z.window_start_ms,
                "carbon_mean_gco2_per_kwh": z.carbon_gco2_per_kwh,
                "renewable_mean_pct": z.renewable_pct,
                "price_mean": z.price_eur_per_mwh,
                "surplus": z.surplus,
            }
            for z in decision.zones_used
        ],
    }


def _remember(state: dict[str, Any], *event_ids: str) -> None:
    state["applied_event_ids"] = (state.get("applied_event_ids", []) + list(event_ids))[-APPLIED_IDS_KEPT:]


def handle_workload_event(
    event: dict[str, Any],
    state: dict[str, Any] | None,
    nodes: Iterable[NodeView],
    zones: Mapping[str, ZoneView],
    settings: Settings,
) -> RouterResult:
    """Apply ``event`` to the workload ``state``; on submission, route it."""
    if state and event["event_id"] in state.get("applied_event_ids", []):
        return RouterResult(state=None)  # a redelivery, or an event this router emitted and already applied
    current = WorkloadState(state["state"]) if state else None
    try:
        target = next_state(current, event["type"])
    except IllegalTransition as exc:
        return RouterResult(state=None, rejected_reason=f"workload {event['workload_id']}: {exc}")

    new = dict(state or {"workload_id": event["workload_id"], "decisions": 0})
    new["state"] = target.value
    _remember(new, event["event_id"])
    if event["type"] == "submitted":
        new["request"] = event["request"]
        return _route_submission(event, new, nodes, zones, settings)
    result = RouterResult(state=new)
    if event.get("node_id"):
        new["node_id"] = event["node_id"]
    if target in TERMINAL and new.get("node_id"):
        result.release = (new["node_id"], event["workload_id"])
    if target in TERMINAL:
        result.settle = True
    if target is WorkloadState.RUNNING and event["type"] in ("started", "resumed"):
        result.running_on = new.get("node_id")
    elif event["type"] == "checkpointed" or target in TERMINAL:
        result.stopped_on = new.get("node_id")
    return result


def _route_submission(
    event: dict[str, Any],
    state: dict[str, Any],
    nodes: Iterable[NodeView],
    zones: Mapping[str, ZoneView],
    settings: Settings,
) -> RouterResult:
    workload_id, now = event["workload_id"], event["ts_ms"]
    request = event["request"]
    decision = route(workload_spec(workload_id, request), nodes, zones, now, settings.scoring, settings.pricing)
    state["decisions"] += 1
    decision_id = decision_id_for(workload_id, state["decisions"], "initial")
    record = decision_record(decision, decision_id, workload_id, "initial", now)
    emits = [Emit(ROUTING_DECISIONS.name, workload_id, record)]
    follow = {
        "workload_id": workload_id,
        "ts_ms": now,
        "decision_id": decision_id,
        "progress_pct": None,
        "checkpoint_uri": None,
        "request": None,
    }
    if decision.chosen is None:
        event_id = f"{decision_id}:rejected"
        emits.append(
            Emit(
                WORKLOAD_EVENTS.name,
                workload_id,
                {**follow, "event_id": event_id, "type": "rejected", "node_id": None, "reason": decision.reason},
            )
        )
        state["state"] = WorkloadState.REJECTED.value
        _remember(state, event_id)
        return RouterResult(state=state, emits=emits)

    node_id = decision.chosen.node_id
    state["price_eur_per_gpu_hour"] = decision.chosen.price_eur_per_gpu_hour
    event_id = f"{decision_id}:routed"
    emits.append(
        Emit(
            WORKLOAD_EVENTS.name,
            workload_id,
            {**follow, "event_id": event_id, "type": "routed", "node_id": node_id, "reason": decision.reason},
        )
    )
    emits.append(
        Emit(
            NODE_COMMANDS.name,
            node_id,
            {
                "command_id": f"{decision_id}:start",
                "node_id": node_id,
                "ts_ms": now,
                "action": "start",
                "workload_id": workload_id,
                "checkpoint_uri": None,
                "vram_mb": int(request["vram_mb"]),
                "expected_hours": float(request["expected_hours"]),
                "image": request.get("image"),
                "command": request.get("command"),
            },
        )
    )
    state["state"] = WorkloadState.ROUTED.value
    state["node_id"] = node_id
    _remember(state, event_id)
    return RouterResult(state=state, emits=emits, reserve=(node_id, workload_id, int(request["vram_mb"])))
