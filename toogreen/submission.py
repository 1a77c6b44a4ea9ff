"""Building a workload submission event: the one shape the API, the CLI and the demo generator all publish."""

from __future__ import annotations

import uuid
from typing import Any

from toogreen.domain.clock import SYSTEM_CLOCK, Clock


def new_workload_id() -> str:
    return f"wl-{uuid.uuid4().hex[:16]}"


def submission_event(
    request: dict[str, Any], workload_id: str | None = None, ts_ms: int | None = None, clock: Clock = SYSTEM_CLOCK
) -> dict[str, Any]:
    """The ``workload.events`` record of type ``submitted`` for ``request`` (a WorkloadRequest dict)."""
    wid = workload_id or new_workload_id()
    return {
        "event_id": f"{wid}:submitted",
        "workload_id": wid,
        "ts_ms": clock.now_ms() if ts_ms is None else ts_ms,
        "type": "submitted",
        "node_id": None,
        "progress_pct": None,
        "checkpoint_uri": None,
        "decision_id": None,
        "reason": None,
        "request": {
            "name": request["name"],
            "workload_type": request["workload_type"],
            "image": request.get("image"),
            "command": request.get("command"),
            "vram_mb": int(request["vram_mb"]),
            "expected_hours": float(request["expected_hours"]),
            "priority": request.get("priority", "normal"),
            "green_only": bool(request.get("green_only", False)),
            "max_carbon_gco2_kwh": request.get("max_carbon_gco2_kwh"),
            "budget_eur": request.get("budget_eur"),
            "deadline_ms": request.get("deadline_ms"),
            "checkpoint_gb": request.get("checkpoint_gb"),
            "submitter": request.get("submitter", ""),
        },
    }
